#pragma once

// Umbrella header: the whole public API.
#include <mpiproc/array.hpp>
#include <mpiproc/barrier.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/condition.hpp>
#include <mpiproc/counter.hpp>
#include <mpiproc/environment.hpp>
#include <mpiproc/error.hpp>
#include <mpiproc/event.hpp>
#include <mpiproc/for_each.hpp>
#include <mpiproc/joinable_queue.hpp>
#include <mpiproc/lock.hpp>
#include <mpiproc/map.hpp>
#include <mpiproc/map_reduce.hpp>
#include <mpiproc/pipe.hpp>
#include <mpiproc/queue.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/reduction.hpp>
#include <mpiproc/rlock.hpp>
#include <mpiproc/roles.hpp>
#include <mpiproc/schedule.hpp>
#include <mpiproc/semaphore.hpp>
#include <mpiproc/shared_dict.hpp>
#include <mpiproc/shared_list.hpp>
#include <mpiproc/value.hpp>

#pragma once

// Umbrella header: the whole public API.
#include <mpiproc/communicator.hpp>
#include <mpiproc/environment.hpp>
#include <mpiproc/error.hpp>
#include <mpiproc/for_each.hpp>
#include <mpiproc/map.hpp>
#include <mpiproc/map_reduce.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/reduction.hpp>
#include <mpiproc/schedule.hpp>

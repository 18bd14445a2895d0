#pragma once

#include <mpiproc/checkpoint.hpp>
#include <mpiproc/chunk_time_limit.hpp>
#include <mpiproc/progress.hpp>

#include <type_traits>
#include <utility>

namespace mpiproc {

namespace detail {
template <class T>
concept call_option = std::is_same_v<std::remove_cvref_t<T>, checkpoint> ||
                      std::is_same_v<std::remove_cvref_t<T>, progress> ||
                      std::is_same_v<std::remove_cvref_t<T>, chunk_time_limit>;

template <class T, class... Options>
inline constexpr int count_of = (0 + ... + (std::is_same_v<std::remove_cvref_t<Options>, T> ? 1 : 0));

/// Options of one call: each of checkpoint, progress and chunk_time_limit at most once.
template <class... Options>
concept each_option_at_most_once =
    (call_option<Options> && ...) && count_of<checkpoint, Options...> <= 1 && count_of<progress, Options...> <= 1 &&
    count_of<chunk_time_limit, Options...> <= 1;
}  // namespace detail

/// The options of a map-style call (the last parameter of map_reduce, map, for_each and their
/// forms): a checkpoint, progress and a chunk time limit, each off unless given. Made from any of
/// them, or from a braced list of several in any order:
///
///   map_reduce(world, r, fn, op, s, mpiproc::checkpoint{"sum.ckpt"});
///   map_reduce(world, r, fn, op, s, {mpiproc::progress{"sum"}, mpiproc::checkpoint{"sum.ckpt"}});
///
/// Giving one kind twice does not compile.
struct call_options {
  /// No options.
  call_options() = default;
  /// The given options (each kind at most once), the others off.
  template <class... Options>
    requires(sizeof...(Options) > 0 && detail::each_option_at_most_once<Options...>)
  call_options(Options&&... options) {  // NOLINT(google-explicit-constructor): an option is the call's options
    (set(std::forward<Options>(options)), ...);
  }
  /// A kind of option given twice: refused, with this line in the compiler's message.
  template <class... Options>
    requires((detail::call_option<Options> && ...) && !detail::each_option_at_most_once<Options...>)
  call_options(Options&&...) = delete;  // give each of checkpoint, progress and chunk_time_limit at most once

  /// Whether the call needs the slices and messages behind progress and time limits.
  bool monitored() const noexcept { return progress.enabled || static_cast<bool>(time_limit); }

  mpiproc::checkpoint checkpoint;
  mpiproc::progress progress = mpiproc::progress::off();
  mpiproc::chunk_time_limit time_limit;

 private:
  void set(mpiproc::checkpoint cp) { checkpoint = std::move(cp); }
  void set(mpiproc::progress p) { progress = std::move(p); }
  void set(mpiproc::chunk_time_limit limit) { time_limit = limit; }
};

}  // namespace mpiproc

// where_test EXPECTED_HOSTS: each rank reports where it runs (host name, network namespace,
// address); rank 0 prints the table and fails unless the ranks span EXPECTED_HOSTS distinct hosts.
#include <mpiproc/mpiproc.hpp>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

namespace {
std::string first_address() {  // the first IPv4 address that is not loopback
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "?";
  std::string found = "none";
  for (ifaddrs* a = list; a; a = a->ifa_next)
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET) {
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
      if (std::string(text) != "127.0.0.1") {
        found = text;
        break;
      }
    }
  freeifaddrs(list);
  return found;
}
}  // namespace

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();
  const int expected = argc > 1 ? std::atoi(argv[1]) : 1;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const char* ns = std::getenv("MPIPROC_NETNS");
  const std::string where = std::string(host) + " " + (ns ? ns : "-") + " " + first_address();
  const auto all = mpiproc::map(world, mpiproc::range<int>{0, world.size()},
                                [&](int) { return where; }, mpiproc::schedule::block());
  if (world.rank() != 0) return 0;
  std::set<std::string> hosts;
  for (std::size_t r = 0; r < all.size(); ++r) {
    std::printf("rank %zu: %s\n", r, all[r].c_str());
    hosts.insert(all[r].substr(0, all[r].find(' ')));
  }
  std::printf("%zu ranks on %zu hosts (expected %d)\n", all.size(), hosts.size(), expected);
  return static_cast<int>(hosts.size()) == expected ? 0 : 1;
}

#include "tests/netlab/netlab.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fmt/format.h"

namespace meridian::netlab {
namespace {

struct Output {
  int exit_code = -1;
  std::string text;  // stdout and stderr
};

Output Ip(const std::vector<std::string>& args) {
  std::string command = IpCommand();
  for (const std::string& arg : args) command += " '" + arg + "'";  // arguments are ours
  command += " 2>&1";
  Output output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return output;
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.text.append(buffer, got);
  int status = ::pclose(pipe);
  output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

}  // namespace

std::string IpCommand() {
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (::access(path, X_OK) == 0) return path;
  }
  return "/usr/sbin/ip";
}

NetLab::NetLab() : regions_(LabRegions()) {}

std::vector<Region> LabRegions() {
  std::vector<Region> regions;
  const char* names[][2] = {{"east", "eastus"}, {"west", "westus"}, {"north", "northeurope"}};
  for (int i = 0; i < 3; ++i) {
    Region region;
    region.resource = names[i][0];
    region.region = names[i][1];
    region.netns = fmt::format("mrdn-{}", i);
    region.host_veth = fmt::format("mrdh{}", i);
    region.host_address = fmt::format("198.18.{}.1", 71 + i);
    region.netns_address = fmt::format("198.18.{}.2", 71 + i);
    regions.push_back(region);
  }
  return regions;
}

NetLab::~NetLab() { Remove(); }

std::string NetLab::Create() {
  Remove();  // left over from a crashed run
  Output addresses = Ip({"-o", "addr"});
  Output routes = Ip({"route"});
  if (addresses.exit_code != 0) return "cannot run ip: " + addresses.text;
  if (addresses.text.find("198.18.") != std::string::npos ||
      routes.text.find("198.18.") != std::string::npos) {
    return "this machine already uses 198.18.0.0/15; not touching it:\n" + addresses.text +
           routes.text;
  }
  for (const Region& r : regions_) {
    std::string peer = r.host_veth + "p";
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"netns", "add", r.netns},
             {"link", "add", r.host_veth, "type", "veth", "peer", "name", peer},
             {"link", "set", peer, "netns", r.netns},
             {"addr", "add", r.host_address + "/24", "dev", r.host_veth},
             {"link", "set", r.host_veth, "up"},
             {"-n", r.netns, "addr", "add", r.netns_address + "/24", "dev", peer},
             {"-n", r.netns, "link", "set", peer, "up"},
             {"-n", r.netns, "link", "set", "lo", "up"}}) {
      Output result = Ip(args);
      if (result.exit_code != 0) {
        return fmt::format("ip {} {}: exit {}: {}", args[0], args[1], result.exit_code,
                           result.text);
      }
    }
  }
  return "";
}

void NetLab::Remove() {
  for (const Region& r : regions_) {
    Ip({"netns", "del", r.netns});  // takes the namespace's end of the link with it
    Ip({"link", "del", r.host_veth});
  }
}

bool NetLab::SetLink(int i, bool up) {
  return Ip({"link", "set", regions_[i].host_veth, up ? "up" : "down"}).exit_code == 0;
}

std::vector<std::string> NetLab::HostAddresses() const {
  std::vector<std::string> hosts;
  for (const Region& r : regions_) hosts.push_back(r.host_address);
  return hosts;
}

}  // namespace meridian::netlab

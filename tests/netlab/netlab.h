// NetLab: network namespaces linked to this one, so that tests and benchmarks can run each
// region's operator behind its own link and cut that link like a real regional outage.
//
// Each region gets a namespace and a veth pair on its own /24 from the benchmarking range
// 198.18.0.0/15 (RFC 2544), which no real network routes: the control plane's end is .1,
// the namespace's end .2. Create() refuses to touch a machine that already uses that range,
// so no traffic can leave the machine. Cutting a link sets the control plane's end down:
// processes in the namespace keep running, exactly as in a region that lost its network.
//
// Needs root (CAP_NET_ADMIN). Names and addresses are fixed, so only one NetLab may exist
// on a machine at a time (ctest runs its users under one RESOURCE_LOCK); Create() first
// removes what a crashed run left behind.
#pragma once

#include <string>
#include <vector>

namespace meridian::netlab {

struct Region {
  std::string resource;  // cloud resource name: east, west, north
  std::string region;    // eastus, westus, northeurope
  std::string netns;
  std::string host_veth;     // the control plane's end of the link
  std::string host_address;  // what the operator dials
  std::string netns_address;
};

class NetLab {
 public:
  NetLab();
  ~NetLab();  // removes the namespaces and links
  NetLab(const NetLab&) = delete;
  NetLab& operator=(const NetLab&) = delete;

  // "" on success, else what failed.
  std::string Create();
  void Remove();
  // Sets region i's link up or down; false when `ip` failed.
  bool SetLink(int i, bool up);

  const std::vector<Region>& regions() const { return regions_; }
  // Every host_address (the server certificate must name them).
  std::vector<std::string> HostAddresses() const;

 private:
  std::vector<Region> regions_;
};

// The three regions a NetLab makes (names and addresses only; creates nothing).
std::vector<Region> LabRegions();

// The iproute2 `ip` program (absolute path).
std::string IpCommand();

}  // namespace meridian::netlab

#include "storage/blob_fault_injector.h"

#include "fmt/format.h"

namespace meridian::storage {

FaultInjectingTransport::FaultInjectingTransport(std::shared_ptr<BlobTransport> inner)
    : inner_(std::move(inner)) {}

void FaultInjectingTransport::InjectResponse(int status, net::HeaderList headers, std::string body,
                                             int count, std::string match) {
  Fault fault;
  fault.match = std::move(match);
  fault.remaining = count;
  fault.response.status = status;
  fault.response.headers = std::move(headers);
  fault.response.content_type = "application/xml";
  fault.response.body = std::move(body);
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(std::move(fault));
}

void FaultInjectingTransport::InjectError(Status error, int count, std::string match) {
  Fault fault;
  fault.match = std::move(match);
  fault.remaining = count;
  fault.error = std::move(error);
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(std::move(fault));
}

Result<net::HttpResponse> FaultInjectingTransport::Send(const net::HttpClientRequest& request) {
  const std::string line = fmt::format("{} {}", request.method, request.url);
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if (line.find(it->match) == std::string::npos) continue;
      Fault fault = *it;
      if (--it->remaining <= 0) faults_.erase(it);
      if (!fault.error.ok()) return fault.error;
      return fault.response;
    }
  }
  if (!inner_) {
    return absl::FailedPreconditionError(fmt::format("unexpected request {}", line));
  }
  return inner_->Send(request);
}

std::vector<net::HttpClientRequest> FaultInjectingTransport::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

int FaultInjectingTransport::request_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(requests_.size());
}

int FaultInjectingTransport::pending_faults() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(faults_.size());
}

}  // namespace meridian::storage

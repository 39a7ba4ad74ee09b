#include "storage/blob_fault_injector.h"

#include <algorithm>
#include <optional>

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

void FaultInjectingTransport::InjectCutBody(int64_t bytes, int count, std::string match) {
  Fault fault;
  fault.match = std::move(match);
  fault.remaining = count;
  fault.cut_after_bytes = bytes;
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(std::move(fault));
}

Result<net::HttpResponse> FaultInjectingTransport::SendCut(const net::HttpClientRequest& request,
                                                           int64_t bytes) {
  if (!inner_) return absl::FailedPreconditionError("a cut body needs an inner transport");
  net::HttpClientRequest cut = request;
  int64_t left = bytes;
  if (request.body_sink) {
    cut.body_sink = [&](int status, std::string_view piece) {
      const std::string_view kept = piece.substr(0, std::max<int64_t>(0, left));
      left -= static_cast<int64_t>(kept.size());
      if (!kept.empty() && !request.body_sink(status, kept)) return false;
      return left > 0;
    };
  }
  Result<net::HttpResponse> response = inner_->Send(cut);
  if (!request.body_sink && response.ok() && response->body.size() > static_cast<size_t>(bytes)) {
    response->body.resize(bytes);
  }
  return absl::UnavailableError(
      fmt::format("injected: connection dropped after {} bytes of the body", bytes));
}

Result<net::HttpResponse> FaultInjectingTransport::Send(const net::HttpClientRequest& request) {
  const std::string line = fmt::format("{} {}", request.method, request.url);
  std::optional<Fault> claimed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    net::HttpClientRequest recorded = request;
    if (recorded.body_view) recorded.body = std::string(*recorded.body_view);
    recorded.body_view.reset();
    recorded.body_sink = nullptr;
    requests_.push_back(std::move(recorded));
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if (line.find(it->match) == std::string::npos) continue;
      claimed = *it;
      if (--it->remaining <= 0) faults_.erase(it);
      break;
    }
  }
  if (claimed) {
    if (!claimed->error.ok()) return claimed->error;
    if (claimed->cut_after_bytes >= 0) return SendCut(request, claimed->cut_after_bytes);
    net::HttpResponse response = claimed->response;
    // A scripted success streams to a receiver as a real one would.
    if (request.body_sink && response.status / 100 == 2 && !response.body.empty()) {
      if (!request.body_sink(response.status, response.body)) {
        return absl::AbortedError("the receiver stopped the transfer");
      }
      response.body.clear();
    }
    return response;
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

#include "storage/blob_transport.h"

#include <vector>

#include "base/mutex.h"

namespace meridian::storage {
namespace {

class PooledHttpTransport final : public BlobTransport {
 public:
  PooledHttpTransport(net::HttpClientOptions options, int max_idle_clients)
      : options_(std::move(options)), max_idle_clients_(max_idle_clients) {}

  Result<net::HttpResponse> Send(const net::HttpClientRequest& request) override {
    std::unique_ptr<net::HttpClient> client = Acquire();
    Result<net::HttpResponse> response = client->Send(request);
    Release(std::move(client));
    return response;
  }

 private:
  std::unique_ptr<net::HttpClient> Acquire() {
    {
      base::MutexLock lock(mu_);
      if (!idle_.empty()) {
        std::unique_ptr<net::HttpClient> client = std::move(idle_.back());
        idle_.pop_back();
        return client;
      }
    }
    return std::make_unique<net::HttpClient>(options_);
  }

  void Release(std::unique_ptr<net::HttpClient> client) {
    base::MutexLock lock(mu_);
    if (static_cast<int>(idle_.size()) < max_idle_clients_) idle_.push_back(std::move(client));
  }

  // Constant after construction.
  const net::HttpClientOptions options_;
  const int max_idle_clients_;

  base::Mutex mu_;
  std::vector<std::unique_ptr<net::HttpClient>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<BlobTransport> NewHttpBlobTransport(net::HttpClientOptions options,
                                                    int max_idle_clients) {
  return std::make_unique<PooledHttpTransport>(std::move(options), max_idle_clients);
}

}  // namespace meridian::storage

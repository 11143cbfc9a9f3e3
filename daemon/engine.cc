#include "daemon/engine.h"

#include <asio/post.hpp>

namespace flin::daemon {

namespace {
constexpr const char* kNotClustered =
    "ERR this node is not part of a cluster (start flind with --bootstrap, --join or "
    "--initial-cluster)";
}  // namespace

void Engine::Post(std::function<void()> f) { asio::post(io_, std::move(f)); }

void Engine::AddMember(std::string, uint64_t, IdDone done) {
  Post([done = std::move(done)] { done(Status::InvalidArgument(kNotClustered)); });
}

void Engine::RemoveMember(uint64_t, StatusDone done) {
  Post([done = std::move(done)] { done(Status::InvalidArgument(kNotClustered)); });
}

void Engine::TransferLeader(uint64_t, StatusDone done) {
  Post([done = std::move(done)] { done(Status::InvalidArgument(kNotClustered)); });
}

void Engine::Join(uint64_t, std::string, std::string, std::function<void(Result<JoinReply>)> done) {
  Post([done = std::move(done)] { done(Status::InvalidArgument(kNotClustered)); });
}

}  // namespace flin::daemon

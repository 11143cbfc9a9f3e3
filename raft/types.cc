#include "raft/types.h"

#include <algorithm>

namespace flin::raft {
namespace {

bool SortedContains(const std::vector<NodeId>& ids, NodeId id) {
  return std::binary_search(ids.begin(), ids.end(), id);
}

void Erase(std::vector<NodeId>* ids, NodeId id) {
  ids->erase(std::remove(ids->begin(), ids->end(), id), ids->end());
}

void Insert(std::vector<NodeId>* ids, NodeId id) {
  auto it = std::lower_bound(ids->begin(), ids->end(), id);
  if (it == ids->end() || *it != id) ids->insert(it, id);
}

}  // namespace

bool ConfState::IsVoter(NodeId id) const { return SortedContains(voters, id); }

bool ConfState::IsLearner(NodeId id) const { return SortedContains(learners, id); }

ConfState ApplyConfChange(ConfState cs, const ConfChange& cc) {
  switch (cc.type) {
    case ConfChangeType::kAddVoter:
      Erase(&cs.learners, cc.node);
      Insert(&cs.voters, cc.node);
      break;
    case ConfChangeType::kAddLearner:
      Erase(&cs.voters, cc.node);
      Insert(&cs.learners, cc.node);
      break;
    case ConfChangeType::kRemoveNode:
      Erase(&cs.voters, cc.node);
      Erase(&cs.learners, cc.node);
      break;
  }
  return cs;
}

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResp:
      return "PreVoteResp";
    case MessageType::kVote:
      return "Vote";
    case MessageType::kVoteResp:
      return "VoteResp";
    case MessageType::kAppend:
      return "Append";
    case MessageType::kAppendResp:
      return "AppendResp";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kHeartbeatResp:
      return "HeartbeatResp";
    case MessageType::kSnapshot:
      return "Snapshot";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
    case MessageType::kReadIndex:
      return "ReadIndex";
    case MessageType::kReadIndexResp:
      return "ReadIndexResp";
  }
  return "Unknown";
}

}  // namespace flin::raft

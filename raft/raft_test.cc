// Scenario tests for the Raft core. Each cites the paper (Ongaro &
// Ousterhout, "In Search of an Understandable Consensus Algorithm", 2014) or
// thesis (Ongaro, "Consensus: Bridging Theory and Practice", 2014) section
// whose rule it checks.
#include "raft/raft.h"

#include <gtest/gtest.h>

#include "raft/codec.h"
#include "raft/testing.h"

namespace flin::raft {
namespace {

using testing::TestCluster;

void NoCheckQuorum(Config* c) {
  c->check_quorum = false;
  c->pre_vote = false;
}
void OneEntryPerMsg(Config* c) {
  c->check_quorum = false;
  c->pre_vote = false;
  c->max_size_per_msg = 1;
}
void LeaseReads(Config* c) { c->read_only = ReadOnlyOption::kLeaseBased; }

// Replaces a node's log: bootstrap snapshot at index 1 (term 1), then one
// entry per element of `terms` from index 2; hard state term `term`.
void SetLog(TestCluster& c, NodeId id, const std::vector<uint64_t>& terms, uint64_t term,
            int voters) {
  testing::TestNode& n = c.node(id);
  ConfState conf;
  for (int i = 1; i <= voters; ++i) conf.voters.push_back(i);
  n.storage = std::make_unique<MemoryStorage>();
  ASSERT_TRUE(n.storage->Bootstrap(conf).ok());
  std::vector<Entry> ents;
  uint64_t index = 2;
  for (uint64_t t : terms) {
    ents.push_back(Entry{t, index, EntryType::kNormal, "v" + std::to_string(index)});
    ++index;
  }
  ASSERT_TRUE(n.storage->Append(&ents).ok());
  n.storage->SetHardState(HardState{term, kNoNode, 1});
  n.config.storage = n.storage.get();
  n.applied_index = 1;
  n.applied.clear();
  n.applied_conf = conf;
  c.Restart(id);
}

std::vector<uint64_t> LogTerms(Raft& r) {
  std::vector<uint64_t> out;
  for (uint64_t i = 2; i <= r.last_index(); ++i) out.push_back(r.TermAt(i));
  return out;
}

uint64_t Propose(TestCluster& c, NodeId leader, const std::string& data) {
  Result<uint64_t> idx = c.raft(leader).Propose(data);
  EXPECT_TRUE(idx.ok()) << idx.status().ToString();
  c.Pump();
  return idx.ok() ? idx.value() : 0;
}

// Paper §5.2: a leader is elected by randomized timeouts, exactly one per
// term, and all nodes learn it.
TEST(RaftElection, ThreeNodesElectOneLeader) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  int leaders = 0;
  for (NodeId id : c.ids()) {
    if (c.raft(id).role() == Role::kLeader) ++leaders;
    EXPECT_EQ(c.raft(id).leader(), l);
    EXPECT_EQ(c.raft(id).term(), c.raft(l).term());
  }
  EXPECT_EQ(leaders, 1);
}

TEST(RaftElection, SingleNodeCommitsAlone) {
  TestCluster c(1);
  NodeId l = c.TickUntilLeader();
  ASSERT_EQ(l, 1u);
  uint64_t idx = Propose(c, 1, "x");
  EXPECT_EQ(c.raft(1).commit_index(), idx);
  ASSERT_FALSE(c.node(1).applied.empty());
  EXPECT_EQ(c.node(1).applied.back().data, "x");
}

// Paper §5.2: each server votes for at most one candidate per term, and
// §5.4.1: only for a candidate whose log is at least as up-to-date.
TEST(RaftElection, VoteRules) {
  TestCluster c(3, 0, NoCheckQuorum);
  SetLog(c, 1, {2}, 2, 3);
  SetLog(c, 2, {2, 2}, 2, 3);
  Message vote;
  vote.type = MessageType::kVote;
  vote.from = 3;
  vote.to = 1;
  vote.term = 3;
  vote.index = 2;
  vote.log_term = 2;
  ASSERT_TRUE(c.raft(1).Step(vote).ok());
  EXPECT_EQ(c.raft(1).vote(), 3u);
  // A second candidate in the same term is refused.
  Message vote2 = vote;
  vote2.from = 2;
  vote2.index = 3;
  ASSERT_TRUE(c.raft(1).Step(vote2).ok());
  EXPECT_EQ(c.raft(1).vote(), 3u);
  // Node 2's log (last term 2, index 3) is more up-to-date than a
  // candidate with last entry (2, term 2): refused.
  Message vote3 = vote;
  vote3.to = 2;
  ASSERT_TRUE(c.raft(2).Step(vote3).ok());
  EXPECT_EQ(c.raft(2).vote(), kNoNode);
  EXPECT_EQ(c.raft(2).term(), 3u);
  Ready rd = c.raft(2).GetReady();
  bool rejected = false;
  for (const Message& m : rd.messages) {
    if (m.type == MessageType::kVoteResp && m.to == 3) rejected = m.reject;
  }
  EXPECT_TRUE(rejected);
  c.raft(2).Advance();
}

// Paper §5.3: proposals on the leader reach every log and every state
// machine in the same order.
TEST(RaftReplication, AllNodesApplySameEntries) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  for (int i = 0; i < 20; ++i) Propose(c, l, "cmd" + std::to_string(i));
  c.TickAll(2);
  auto normal = [](const std::vector<Entry>& ents) {
    std::vector<std::string> out;
    for (const Entry& e : ents) {
      if (e.type == EntryType::kNormal) out.push_back(e.data);
    }
    return out;
  };
  std::vector<std::string> want = normal(c.node(l).applied);
  ASSERT_EQ(want.size(), 20u);
  EXPECT_EQ(want[0], "cmd0");
  for (NodeId id : c.ids()) EXPECT_EQ(normal(c.node(id).applied), want);
}

// Paper §5.3 and Figure 7: whatever the follower's log, the leader brings it
// into agreement with its own (missing entries, extra uncommitted entries,
// or both), using the conflict hints to skip whole terms.
TEST(RaftReplication, Figure7FollowersConverge) {
  const std::vector<uint64_t> leader = {1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<uint64_t>> followers = {
      {1, 1, 4, 4, 5, 5, 6, 6},           // (a) missing one entry
      {1, 1, 4},                          // (b) missing many
      {1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c) one extra
      {1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d) extra entries of term 7
      {1, 1, 4, 4, 4, 4},                 // (e) conflicting term-4 tail
      {1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f) conflicting terms 2 and 3
  };
  for (size_t k = 0; k < followers.size(); ++k) {
    SCOPED_TRACE("follower (" + std::string(1, char('a' + k)) + ")");
    TestCluster c(3, 0, NoCheckQuorum);
    SetLog(c, 1, leader, 8, 3);
    SetLog(c, 2, followers[k], 8, 3);
    SetLog(c, 3, {}, 8, 3);
    c.raft(1).Campaign();
    c.Pump();
    ASSERT_EQ(c.raft(1).role(), Role::kLeader);
    std::vector<uint64_t> want = leader;
    want.push_back(9);  // the new leader's no-op
    EXPECT_EQ(LogTerms(c.raft(1)), want);
    EXPECT_EQ(LogTerms(c.raft(2)), want);
    EXPECT_EQ(c.raft(2).commit_index(), c.raft(1).commit_index());
    EXPECT_EQ(c.raft(1).commit_index(), want.size() + 1);
  }
}

// Paper §5.4.2 and Figure 8: a leader must not commit an entry of an
// earlier term by counting replicas, even when a majority stores it,
// because a later leader may still overwrite it. The test-only switch
// that breaks the rule commits it (and the simulator shows the damage).
TEST(RaftSafety, Figure8NoCommitOfOldTermByCounting) {
  for (bool unsafe : {false, true}) {
    SCOPED_TRACE(unsafe ? "unsafe" : "safe");
    TestCluster c(5, 0, OneEntryPerMsg);
    if (unsafe) {
      for (NodeId id : c.ids()) {
        c.node(id).config.unsafe_commit_previous_term_by_counting = true;
        c.Restart(id);
      }
    }
    // State (c) of Figure 8: S1 holds index 2 from term 2, S5 index 2 from
    // term 3; S1 becomes leader of term 4 and replicates index 2 (but not
    // its own no-op at index 3) to S2 and S3.
    SetLog(c, 1, {2}, 3, 5);
    SetLog(c, 2, {2}, 3, 5);
    SetLog(c, 3, {}, 3, 5);
    SetLog(c, 4, {}, 3, 5);
    SetLog(c, 5, {3}, 3, 5);
    if (unsafe) {
      for (NodeId id : c.ids()) {
        c.node(id).config.unsafe_commit_previous_term_by_counting = true;
        c.Restart(id);
      }
    }
    c.Isolate(5);
    // Appends lose every entry from index 3 on (the leader's no-op), as if
    // the byte cap had split them off and those messages were lost.
    c.SetFilter([](Message& m) {
      if (m.type != MessageType::kAppend) return true;
      while (!m.entries.empty() && m.entries.back().index >= 3) {
        m.entries.pop_back();
      }
      return m.to != 4;
    });
    c.raft(1).Campaign();
    c.Pump();
    ASSERT_EQ(c.raft(1).role(), Role::kLeader);
    ASSERT_EQ(c.raft(1).term(), 4u);
    EXPECT_EQ(c.raft(3).TermAt(2), 2u);  // index 2 is on S1, S2, S3
    if (!unsafe) {
      EXPECT_EQ(c.raft(1).commit_index(), 1u);
      // Once the no-op of term 4 reaches a majority, both commit.
      c.SetFilter(nullptr);
      c.TickAll(2);
      EXPECT_EQ(c.raft(1).commit_index(), 3u);
    } else {
      EXPECT_EQ(c.raft(1).commit_index(), 2u);  // the bug: Figure 8 (c)
    }
  }
}

// Thesis §9.6: a node partitioned away keeps pre-voting without raising
// its term, so when it comes back it does not depose the leader.
TEST(RaftElection, PreVoteKeepsPartitionedNodeFromDisrupting) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  uint64_t term = c.raft(l).term();
  NodeId lonely = l == 3 ? 2 : 3;
  c.Isolate(lonely);
  c.TickAll(100);
  EXPECT_EQ(c.raft(lonely).term(), term);  // no term inflation
  EXPECT_NE(c.raft(lonely).role(), Role::kLeader);
  c.Recover();
  c.TickAll(30);
  EXPECT_EQ(c.Leader(), l);
  EXPECT_EQ(c.raft(l).term(), term);
}

// Without pre-vote the same partition disrupts the cluster: the test above
// is meaningful because this one shows the failure it prevents.
TEST(RaftElection, WithoutPreVoteTheReturningNodeDisrupts) {
  TestCluster c(3, 0, [](Config* cfg) {
    cfg->pre_vote = false;
    cfg->check_quorum = false;
  });
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  uint64_t term = c.raft(l).term();
  NodeId lonely = l == 3 ? 2 : 3;
  c.Isolate(lonely);
  c.TickAll(100);
  EXPECT_GT(c.raft(lonely).term(), term + 2);
  c.Recover();
  c.TickAll(50);
  EXPECT_GT(c.raft(c.TickUntilLeader()).term(), term + 2);
}

// Thesis §6.2: with check-quorum, a leader cut off from a majority steps
// down within about an election timeout; the majority elects a new one.
TEST(RaftElection, CheckQuorumLeaderStepsDown) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  c.Isolate(l);
  c.TickAll(25);
  EXPECT_NE(c.raft(l).role(), Role::kLeader);
  NodeId l2 = c.Leader();
  ASSERT_NE(l2, kNoNode);
  EXPECT_NE(l2, l);
  EXPECT_GT(c.raft(l2).term(), c.raft(l).term());
}

// Thesis §4.2.3: followers that hear from a leader ignore vote requests
// (here a forced campaign from a node whose log is up to date).
TEST(RaftElection, FollowersIgnoreVotesWhileLeaderIsAlive) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  NodeId f = l == 1 ? 2 : 1;
  uint64_t term = c.raft(l).term();
  c.raft(f).Campaign();
  c.Pump();
  EXPECT_EQ(c.Leader(), l);
  EXPECT_EQ(c.raft(l).term(), term);
}

// Lease reads rely on followers refusing votes after they heard from the
// leader; a follower that restarts must keep that promise too, so for an
// election timeout after starting it ignores vote requests.
TEST(RaftElection, RestartedNodeHonoursLeaseBeforeVoting) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  NodeId f = l == 1 ? 2 : 1;
  c.Restart(f);
  Message vote;
  vote.type = MessageType::kVote;
  vote.from = l == 3 ? 2 : 3;
  if (vote.from == f) vote.from = 6 - l - f;
  vote.to = f;
  vote.term = c.raft(f).term() + 1;
  vote.index = c.raft(f).last_index();
  vote.log_term = c.raft(f).TermAt(vote.index);
  uint64_t term = c.raft(f).term();
  ASSERT_TRUE(c.raft(f).Step(vote).ok());
  EXPECT_EQ(c.raft(f).term(), term);  // ignored entirely
  EXPECT_NE(c.raft(f).vote(), vote.from);
  for (int i = 0; i < 10; ++i) c.raft(f).Tick();
  vote.term = c.raft(f).term() + 1;
  ASSERT_TRUE(c.raft(f).Step(vote).ok());
  EXPECT_EQ(c.raft(f).vote(), vote.from);  // the promise has lapsed
}

// Thesis §3.10: leadership transfer hands over to a caught-up target with
// TimeoutNow; proposals are refused meanwhile.
TEST(RaftTransfer, TransferToFollower) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  NodeId target = l == 3 ? 1 : 3;
  // Let the target fall behind so the transfer must first catch it up.
  c.Isolate(target);
  Propose(c, l, "a");
  c.Recover();
  ASSERT_TRUE(c.raft(l).TransferLeader(target).ok());
  EXPECT_FALSE(c.raft(l).Propose("refused").ok());
  c.Pump();
  c.TickAll(3);
  EXPECT_EQ(c.Leader(), target);
  EXPECT_EQ(c.raft(l).role(), Role::kFollower);
  Propose(c, target, "b");
  c.TickAll(2);
  EXPECT_EQ(c.node(l).applied.back().data, "b");
}

TEST(RaftTransfer, TransferAbortsAfterElectionTimeout) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  NodeId target = l == 3 ? 1 : 3;
  c.Isolate(target);
  Propose(c, l, "a");
  ASSERT_TRUE(c.raft(l).TransferLeader(target).ok());
  EXPECT_EQ(c.raft(l).lead_transferee(), target);
  for (int i = 0; i < 12; ++i) {
    c.raft(l).Tick();
    c.Pump();
  }
  EXPECT_EQ(c.raft(l).lead_transferee(), kNoNode);
  EXPECT_EQ(c.raft(l).role(), Role::kLeader);
  EXPECT_TRUE(c.raft(l).Propose("accepted again").ok());
}

// Thesis §6.4: ReadIndex confirms leadership with one heartbeat round, and
// every read pending when the round starts shares it.
TEST(RaftRead, ReadIndexBatchesOneRoundPerBatch) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  Propose(c, l, "w");
  int heartbeats = 0;
  c.SetFilter([&](const Message& m) {
    if (m.type == MessageType::kHeartbeat) ++heartbeats;
    return true;
  });
  // First read starts a round at once; the next two wait for the next one.
  c.raft(l).ReadIndex("r1");
  c.raft(l).ReadIndex("r2");
  c.raft(l).ReadIndex("r3");
  c.Pump();
  ASSERT_EQ(c.node(l).reads.size(), 3u);
  EXPECT_EQ(c.node(l).reads[0].context, "r1");
  EXPECT_EQ(c.node(l).reads[2].context, "r3");
  EXPECT_EQ(c.node(l).reads[0].index, c.raft(l).commit_index());
  EXPECT_EQ(heartbeats, 4);  // two rounds to two followers
}

TEST(RaftRead, ReadIndexNeedsQuorum) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  for (NodeId id : c.ids()) {
    if (id != l) c.Isolate(id);
  }
  c.raft(l).ReadIndex("r");
  c.Pump();
  c.raft(l).Tick();
  c.Pump();
  EXPECT_TRUE(c.node(l).reads.empty());
}

TEST(RaftRead, FollowerReadIsForwarded) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  uint64_t idx = Propose(c, l, "w");
  NodeId f = l == 1 ? 2 : 1;
  c.raft(f).ReadIndex("fr");
  c.Pump();
  ASSERT_EQ(c.node(f).reads.size(), 1u);
  EXPECT_EQ(c.node(f).reads[0].context, "fr");
  EXPECT_GE(c.node(f).reads[0].index, idx);
}

// Thesis §6.4.1: with a lease (check-quorum on) the leader answers at once;
// when the lease has lapsed it falls back to a heartbeat round.
TEST(RaftRead, LeaseReadsSkipTheRoundWhileLeaseHolds) {
  TestCluster c(3, 0, LeaseReads);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  c.TickAll(2);  // heartbeats acknowledged: lease established
  c.raft(l).ReadIndex("lease");
  Ready rd = c.raft(l).GetReady();
  ASSERT_EQ(rd.read_states.size(), 1u);
  EXPECT_EQ(rd.read_states[0].context, "lease");
  c.raft(l).Advance();
  // Cut the leader off: the lease runs out and reads stop being served.
  c.Isolate(l);
  for (int i = 0; i < 9; ++i) {
    c.raft(l).Tick();
    c.Pump();
  }
  c.node(l).reads.clear();
  c.raft(l).ReadIndex("late");
  c.Pump();
  EXPECT_TRUE(c.node(l).reads.empty());
}

// Thesis §6.4.1: whenever some other node leads, the deposed leader's lease
// has already run out, so it can never answer a lease read with stale data.
TEST(RaftRead, LeaseEndsBeforeAnotherLeaderExists) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TestCluster c(3, 0, LeaseReads);
    for (NodeId id : c.ids()) {
      c.node(id).config.random_seed = seed * 31 + id;
      c.Restart(id);
    }
    NodeId l = c.TickUntilLeader();
    ASSERT_NE(l, kNoNode);
    c.TickAll(3);
    c.Isolate(l);
    bool other_elected = false;
    for (int t = 0; t < 200 && !other_elected; ++t) {
      c.TickAll();
      for (NodeId id : c.ids()) {
        if (id != l && c.raft(id).role() == Role::kLeader) other_elected = true;
      }
      if (c.raft(l).role() == Role::kLeader) {
        // Isolated: only the lease can answer this read.
        c.node(l).reads.clear();
        c.raft(l).ReadIndex("probe");
        c.Pump();
        if (other_elected) {
          EXPECT_TRUE(c.node(l).reads.empty())
              << "deposed leader served a lease read at tick " << t;
        }
      }
    }
    EXPECT_TRUE(other_elected);
  }
}

// Thesis §4.2.1 and §4.1: a learner receives the log but does not vote or
// count; it can be promoted once caught up; changes go one at a time.
TEST(RaftMembership, AddLearnerThenPromote) {
  TestCluster c(3, 1);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  Propose(c, l, "before");
  // Compact the leader's log so the newcomer needs a snapshot.
  testing::TestNode& ln = c.node(l);
  ASSERT_TRUE(ln.storage->CreateSnapshot(ln.applied_index, ln.applied_conf).ok());
  ASSERT_TRUE(ln.storage->Compact(ln.applied_index).ok());
  auto idx = c.raft(l).ProposeConfChange({ConfChangeType::kAddLearner, 4});
  ASSERT_TRUE(idx.ok()) << idx.status().ToString();
  // A second change is refused while the first is pending.
  EXPECT_FALSE(c.raft(l).ProposeConfChange({ConfChangeType::kAddLearner, 5}).ok());
  c.Pump();
  c.TickAll(3);
  EXPECT_TRUE(c.raft(l).conf().IsLearner(4));
  EXPECT_EQ(c.node(4).snapshots_installed, 1);
  EXPECT_EQ(c.raft(4).commit_index(), c.raft(l).commit_index());
  EXPECT_EQ(c.raft(4).role(), Role::kFollower);
  // The learner never campaigns.
  for (int i = 0; i < 50; ++i) c.raft(4).Tick();
  c.Pump();
  EXPECT_EQ(c.raft(4).role(), Role::kFollower);
  ASSERT_TRUE(c.raft(l).ProposeConfChange({ConfChangeType::kAddVoter, 4}).ok());
  c.Pump();
  c.TickAll(2);
  EXPECT_TRUE(c.raft(l).conf().IsVoter(4));
  EXPECT_TRUE(c.raft(4).conf().IsVoter(4));
  // Four voters: quorum 3; with two down nothing commits.
  NodeId a = l == 1 ? 2 : 1, b = l == 3 ? 2 : 3;
  c.Isolate(a);
  c.Isolate(b);
  uint64_t commit = c.raft(l).commit_index();
  ASSERT_TRUE(c.raft(l).Propose("needs three").ok());
  c.Pump();
  EXPECT_EQ(c.raft(l).commit_index(), commit);
}

TEST(RaftMembership, LaggingLearnerIsNotPromoted) {
  TestCluster c(3, 1);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  ASSERT_TRUE(c.raft(l).ProposeConfChange({ConfChangeType::kAddLearner, 4}).ok());
  c.Pump();
  c.TickAll(2);
  c.Isolate(4);
  Propose(c, l, "x");
  auto r = c.raft(l).ProposeConfChange({ConfChangeType::kAddVoter, 4});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnavailable);
}

// Thesis §4.2.2: the leader can remove itself; it steps down once the
// change is committed and the others elect a leader among themselves.
TEST(RaftMembership, RemoveLeaderItself) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  ASSERT_TRUE(c.raft(l).ProposeConfChange({ConfChangeType::kRemoveNode, l}).ok());
  c.Pump();
  EXPECT_NE(c.raft(l).role(), Role::kLeader);
  NodeId l2 = c.TickUntilLeader();
  ASSERT_NE(l2, kNoNode);
  EXPECT_NE(l2, l);
  Propose(c, l2, "after");
  c.TickAll(2);
  EXPECT_EQ(c.node(l2).applied.back().data, "after");
  for (NodeId id : c.ids()) {
    if (id != l) {
      EXPECT_EQ(c.node(id).applied.back().data, "after");
    }
  }
  // The removed node never campaigns again.
  c.TickAll(60);
  EXPECT_NE(c.raft(l).role(), Role::kLeader);
  EXPECT_NE(c.raft(l).role(), Role::kCandidate);
}

TEST(RaftMembership, RemoveFollowerShrinksQuorum) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  NodeId gone = l == 3 ? 2 : 3;
  ASSERT_TRUE(c.raft(l).ProposeConfChange({ConfChangeType::kRemoveNode, gone}).ok());
  c.Pump();
  c.TickAll(1);
  EXPECT_EQ(c.raft(l).conf().voters.size(), 2u);
  c.Isolate(gone);
  uint64_t idx = Propose(c, l, "two voters");
  EXPECT_EQ(c.raft(l).commit_index(), idx);
}

TEST(RaftMembership, InvalidChangesAreRefused) {
  TestCluster c(1);
  ASSERT_EQ(c.TickUntilLeader(), 1u);
  EXPECT_EQ(c.raft(1).ProposeConfChange({ConfChangeType::kRemoveNode, 1}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(c.raft(1).ProposeConfChange({ConfChangeType::kRemoveNode, 7}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(c.raft(1).ProposeConfChange({ConfChangeType::kAddVoter, 1}).status().code(),
            Status::Code::kInvalidArgument);
}

// Paper §7: a follower that lags behind the leader's compacted log gets a
// snapshot (streamed in chunks by the driver) and then the entries after it.
TEST(RaftSnapshot, LaggingFollowerCatchesUpBySnapshot) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  NodeId lag = l == 3 ? 1 : 3;
  c.Isolate(lag);
  for (int i = 0; i < 10; ++i) Propose(c, l, "e" + std::to_string(i));
  testing::TestNode& ln = c.node(l);
  ASSERT_TRUE(ln.storage->CreateSnapshot(ln.applied_index, ln.applied_conf).ok());
  ASSERT_TRUE(ln.storage->Compact(ln.applied_index).ok());
  Propose(c, l, "after snapshot");
  c.Recover();
  c.TickAll(3);
  EXPECT_EQ(c.node(lag).snapshots_installed, 1);
  EXPECT_EQ(c.raft(lag).commit_index(), c.raft(l).commit_index());
  EXPECT_EQ(c.node(lag).applied.back().data, "after snapshot");
  EXPECT_EQ(c.node(lag).applied_index, c.node(l).applied_index);
}

// Paper §7: a follower that already holds the snapshot's last entry keeps
// the entries after it, learns the commit, and acknowledges only what the
// snapshot proves (not its possibly conflicting tail).
TEST(RaftSnapshot, SnapshotCoveredByLogIsDeclined) {
  TestCluster c(3, 0, NoCheckQuorum);
  SetLog(c, 2, {2, 2, 3}, 3, 3);
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = 1;
  m.to = 2;
  m.term = 4;
  m.snapshot = SnapshotMeta{3, 2, ConfState{{1, 2, 3}, {}}};
  m.snapshot_last = true;
  ASSERT_TRUE(c.raft(2).Step(m).ok());
  EXPECT_EQ(c.raft(2).commit_index(), 3u);
  EXPECT_EQ(c.raft(2).last_index(), 4u);  // the tail is kept
  Ready rd = c.raft(2).GetReady();
  EXPECT_FALSE(rd.snapshot.has_value());
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kAppendResp);
  EXPECT_EQ(rd.messages[0].index, 3u);
  c.raft(2).Advance();
}

TEST(RaftSnapshot, FailedStreamIsRetried) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  NodeId lag = l == 3 ? 1 : 3;
  c.Isolate(lag);
  for (int i = 0; i < 5; ++i) Propose(c, l, "e" + std::to_string(i));
  testing::TestNode& ln = c.node(l);
  ASSERT_TRUE(ln.storage->CreateSnapshot(ln.applied_index, ln.applied_conf).ok());
  ASSERT_TRUE(ln.storage->Compact(ln.applied_index).ok());
  c.Recover();
  // Lose every last chunk: the follower never holds a whole file.
  c.SetFilter(
      [](const Message& m) { return !(m.type == MessageType::kSnapshot && m.snapshot_last); });
  c.TickAll(5);
  EXPECT_EQ(c.node(lag).snapshots_installed, 0);
  c.SetFilter(nullptr);
  c.TickAll(5);
  EXPECT_EQ(c.node(lag).snapshots_installed, 1);
  EXPECT_EQ(c.raft(lag).commit_index(), c.raft(l).commit_index());
}

// Paper Figure 2: term and vote survive a restart, so a node cannot vote
// twice in one term by crashing.
TEST(RaftPersistence, RestartKeepsTermVoteAndLog) {
  TestCluster c(3);
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  uint64_t idx = Propose(c, l, "durable");
  NodeId f = l == 1 ? 2 : 1;
  HardState before = c.raft(f).hard_state();
  c.Restart(f);
  EXPECT_EQ(c.raft(f).term(), before.term);
  EXPECT_EQ(c.raft(f).vote(), before.vote);
  EXPECT_GE(c.raft(f).last_index(), idx);
  c.TickAll(3);
  EXPECT_EQ(c.raft(f).commit_index(), c.raft(l).commit_index());
}

// The driver may keep stepping messages while it persists a Ready; the
// leader counts its own log only once Advance says it is durable.
TEST(RaftReady, LeaderCountsItselfOnlyAfterPersisting) {
  TestCluster c(1);
  ASSERT_EQ(c.TickUntilLeader(), 1u);
  Raft& r = c.raft(1);
  uint64_t commit = r.commit_index();
  auto idx = r.Propose("x");
  ASSERT_TRUE(idx.ok());
  ASSERT_TRUE(r.HasReady());
  Ready rd = r.GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(r.commit_index(), commit);  // not durable yet
  EXPECT_FALSE(r.HasReady());           // one Ready at a time
  auto idx2 = r.Propose("y");           // accepted while persisting
  ASSERT_TRUE(idx2.ok());
  std::vector<Entry> ents = rd.entries;
  ASSERT_TRUE(c.node(1).storage->Append(&ents).ok());
  r.Advance();
  EXPECT_EQ(r.commit_index(), idx.value());
  Ready rd2 = r.GetReady();
  ASSERT_EQ(rd2.entries.size(), 1u);  // only the new entry
  EXPECT_EQ(rd2.entries[0].data, "y");
  ASSERT_EQ(rd2.committed_entries.size(), 1u);
  EXPECT_EQ(rd2.committed_entries[0].data, "x");
  ents = rd2.entries;
  ASSERT_TRUE(c.node(1).storage->Append(&ents).ok());
  r.Advance();
}

// Flow control (thesis §10.2): in steady state one append per follower
// carries every entry proposed since the last Ready, and the in-flight
// window bounds how far a silent follower is pushed.
TEST(RaftFlowControl, BatchesAndInflightWindow) {
  TestCluster c(3, 0, [](Config* cfg) { cfg->max_inflight_msgs = 4; });
  NodeId l = c.TickUntilLeader();
  ASSERT_NE(l, kNoNode);
  Propose(c, l, "warm");
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(c.raft(l).Propose("p").ok());
  Ready rd = c.raft(l).GetReady();
  size_t appends = 0;
  for (const Message& m : rd.messages) {
    if (m.type == MessageType::kAppend) {
      ++appends;
      EXPECT_EQ(m.entries.size(), 100u);
    }
  }
  EXPECT_EQ(appends, 2u);
  ASSERT_TRUE(c.node(l).storage->Append(&rd.entries).ok());
  if (rd.hard_state) c.node(l).storage->SetHardState(*rd.hard_state);
  for (Message& m : rd.messages) c.Send(std::move(m));
  c.raft(l).Advance();
  c.Pump();
  // A follower that never answers gets at most 4 appends in flight.
  NodeId f = l == 1 ? 2 : 1;
  c.Cut(f, l);
  int sent = 0;
  c.SetFilter([&](const Message& m) {
    if (m.type == MessageType::kAppend && m.to == f && !m.entries.empty()) {
      ++sent;
    }
    return true;
  });
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(c.raft(l).Propose("q").ok());
    c.Pump();
  }
  EXPECT_EQ(sent, 4);
}

TEST(RaftConfig, ValidateRejectsBadConfigs) {
  MemoryStorage s;
  Config c;
  c.id = 1;
  c.storage = &s;
  EXPECT_TRUE(c.Validate().ok());
  Config bad = c;
  bad.election_tick_max = bad.election_tick_min;
  EXPECT_FALSE(bad.Validate().ok());
  bad = c;
  bad.read_only = ReadOnlyOption::kLeaseBased;
  bad.check_quorum = false;
  EXPECT_FALSE(bad.Validate().ok());
  bad = c;
  bad.id = kNoNode;
  EXPECT_FALSE(Raft::Create(bad).ok());
}

TEST(RaftStep, RejectsMalformedMessages) {
  TestCluster c(3);
  Message m;
  m.type = MessageType::kAppend;
  m.from = 2;
  m.to = 1;
  m.term = 5;
  m.index = 1;
  m.log_term = 1;
  m.entries.push_back(Entry{5, 7, EntryType::kNormal, "gap"});
  EXPECT_FALSE(c.raft(1).Step(m).ok());
  m.entries.clear();
  m.to = 3;
  EXPECT_FALSE(c.raft(1).Step(m).ok());
  EXPECT_EQ(c.raft(1).term(), 0u + c.raft(1).term());
}

}  // namespace
}  // namespace flin::raft

#include "tests/sim/linearizability.h"

#include <algorithm>
#include <map>
#include <unordered_set>

namespace flin::sim {
namespace {

struct Node {
  int op = -1;
  bool is_call = false;
  Node* match = nullptr;  // call -> its return
  Node* prev = nullptr;
  Node* next = nullptr;
};

// Returns 1 linearizable, 0 not, -1 budget exhausted.
int CheckKey(const std::vector<const HistoryOp*>& ops, uint64_t* budget) {
  size_t n = ops.size();
  std::vector<std::pair<uint64_t, int>> events;  // (time, +op call / ~op ret)
  for (size_t i = 0; i < n; ++i) {
    events.emplace_back(ops[i]->call * 2, static_cast<int>(i));
    // Returns sort after calls at equal time only for never-returned ops.
    uint64_t r = ops[i]->ret == kNeverReturned ? kNeverReturned : ops[i]->ret * 2 + 1;
    events.emplace_back(r, ~static_cast<int>(i));
  }
  std::stable_sort(events.begin(), events.end(),
                   [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<Node> nodes(2 * n + 1);
  Node* head = &nodes[2 * n];  // sentinel
  std::vector<Node*> call_of(n), ret_of(n);
  Node* prev = head;
  for (size_t k = 0; k < events.size(); ++k) {
    Node* x = &nodes[k];
    int v = events[k].second;
    x->is_call = v >= 0;
    x->op = v >= 0 ? v : ~v;
    (x->is_call ? call_of : ret_of)[x->op] = x;
    x->prev = prev;
    prev->next = x;
    prev = x;
  }
  for (size_t i = 0; i < n; ++i) call_of[i]->match = ret_of[i];

  auto lift = [](Node* call) {
    call->prev->next = call->next;
    if (call->next) call->next->prev = call->prev;
    Node* r = call->match;
    r->prev->next = r->next;
    if (r->next) r->next->prev = r->prev;
  };
  auto unlift = [](Node* call) {
    Node* r = call->match;
    r->prev->next = r;
    if (r->next) r->next->prev = r;
    call->prev->next = call;
    if (call->next) call->next->prev = call;
  };

  std::string state;  // "" = absent
  std::vector<uint64_t> lin((n + 63) / 64, 0);
  std::unordered_set<std::string> cache;
  auto cache_key = [&](const std::string& s) {
    std::string k(reinterpret_cast<const char*>(lin.data()), lin.size() * 8);
    k.push_back('\0');
    k += s;
    return k;
  };
  struct Frame {
    Node* call;
    std::string old_state;
  };
  std::vector<Frame> stack;
  Node* entry = head->next;
  while (head->next != nullptr) {
    if ((*budget)-- == 0) return -1;
    if (entry == nullptr) return 0;  // defensive; cannot happen
    if (entry->is_call) {
      const HistoryOp& op = *ops[entry->op];
      bool ok = op.write || op.value == state;
      if (ok) {
        std::string new_state = op.write ? op.value : state;
        lin[entry->op / 64] |= 1ull << (entry->op % 64);
        if (cache.insert(cache_key(new_state)).second) {
          stack.push_back(Frame{entry, state});
          state = std::move(new_state);
          lift(entry);
          entry = head->next;
          continue;
        }
        lin[entry->op / 64] &= ~(1ull << (entry->op % 64));
      }
      entry = entry->next;
    } else {
      if (stack.empty()) return 0;
      Frame f = std::move(stack.back());
      stack.pop_back();
      state = std::move(f.old_state);
      lin[f.call->op / 64] &= ~(1ull << (f.call->op % 64));
      unlift(f.call);
      entry = f.call->next;
    }
  }
  return 1;
}

}  // namespace

LinearizabilityResult CheckLinearizable(const std::vector<HistoryOp>& history, uint64_t budget) {
  std::map<std::string, std::vector<const HistoryOp*>> by_key;
  for (const HistoryOp& op : history) by_key[op.key].push_back(&op);
  LinearizabilityResult res;
  for (auto& [key, ops] : by_key) {
    int r = CheckKey(ops, &budget);
    if (r == 0) {
      res.ok = false;
      res.key = key;
      return res;
    }
    if (r < 0) {
      res.inconclusive = true;
      return res;
    }
  }
  return res;
}

}  // namespace flin::sim

// PVM's dynamic groups (libgpvm3's functions): the home node keeps the
// groups (runtime/core/guest_groups.h); bcast and reduce are messages
// between the members.
#include <pvm3.h>

#include <complex>
#include <cstdio>
#include <cstring>
#include <vector>

#include "compat/pvm/pack.h"
#include "compat/pvm/task.h"
#include "runtime/core/guest_groups.h"

using mosix::GroupOp;
using mosix::pvm::task;
using mosix::pvm::tid_of_rank;

namespace {

int group_error(const char* function, int code) {
  if (code < 0 && pvm_getopt(PvmAutoErr) != 0) {
    std::fprintf(stderr, "libgpvm [t%x]: %s(): error %d\n", task().enrolled() ? task().tid() : 0, function, code);
  }
  return code;
}

int ask(const char* function, GroupOp op, const char* group, int arg, std::vector<int>* ranks = nullptr) {
  if (int r = pvm_mytid(); r < 0) return r;
  if (group == nullptr || *group == '\0') return group_error(function, PvmNullGroup);
  auto answer = task().group_answer(static_cast<std::uint32_t>(op), group, arg);
  if (!answer) return group_error(function, PvmSysErr);
  if (ranks) {
    for (std::size_t i = 0; i + 4 <= answer->bytes.size(); i += 4) {
      std::uint32_t v = 0;
      for (int b = 0; b < 4; ++b) v |= static_cast<std::uint32_t>(answer->bytes[i + static_cast<std::size_t>(b)]) << (8 * b);
      ranks->push_back(static_cast<int>(v));
    }
  }
  return answer->tag < 0 ? group_error(function, answer->tag) : answer->tag;
}

enum class Op { kMax, kMin, kSum, kProduct };

template <typename T>
void combine(Op op, T* x, const T* y, int n) {
  for (int i = 0; i < n; ++i) {
    switch (op) {
      case Op::kMax: if (y[i] > x[i]) x[i] = y[i]; break;
      case Op::kMin: if (y[i] < x[i]) x[i] = y[i]; break;
      case Op::kSum: x[i] += y[i]; break;
      case Op::kProduct: x[i] *= y[i]; break;
    }
  }
}

template <typename T>
void combine_complex(Op op, T* x, const T* y, int n) {
  for (int i = 0; i < n; ++i) {
    std::complex<T> a(x[2 * i], x[2 * i + 1]), b(y[2 * i], y[2 * i + 1]);
    a = op == Op::kSum ? a + b : a * b;
    x[2 * i] = a.real();
    x[2 * i + 1] = a.imag();
  }
}

void builtin(Op op, int* datatype, void* x, void* y, int* num, int* info) {
  *info = PvmOk;
  const int n = *num;
  switch (*datatype) {
    case PVM_SHORT: combine(op, static_cast<short*>(x), static_cast<short*>(y), n); break;
    case PVM_USHORT: combine(op, static_cast<unsigned short*>(x), static_cast<unsigned short*>(y), n); break;
    case PVM_INT: combine(op, static_cast<int*>(x), static_cast<int*>(y), n); break;
    case PVM_UINT: combine(op, static_cast<unsigned*>(x), static_cast<unsigned*>(y), n); break;
    case PVM_LONG: combine(op, static_cast<long*>(x), static_cast<long*>(y), n); break;
    case PVM_ULONG: combine(op, static_cast<unsigned long*>(x), static_cast<unsigned long*>(y), n); break;
    case PVM_FLOAT: combine(op, static_cast<float*>(x), static_cast<float*>(y), n); break;
    case PVM_DOUBLE: combine(op, static_cast<double*>(x), static_cast<double*>(y), n); break;
    case PVM_CPLX:
    case PVM_DCPLX:
      if (op == Op::kMax || op == Op::kMin) {
        *info = PvmBadParam;  // complex numbers have no order
      } else if (*datatype == PVM_CPLX) {
        combine_complex(op, static_cast<float*>(x), static_cast<float*>(y), n);
      } else {
        combine_complex(op, static_cast<double*>(x), static_cast<double*>(y), n);
      }
      break;
    default: *info = PvmBadParam;
  }
}

}  // namespace

extern "C" {

void PvmMax(int* t, void* x, void* y, int* n, int* info) { builtin(Op::kMax, t, x, y, n, info); }
void PvmMin(int* t, void* x, void* y, int* n, int* info) { builtin(Op::kMin, t, x, y, n, info); }
void PvmSum(int* t, void* x, void* y, int* n, int* info) { builtin(Op::kSum, t, x, y, n, info); }
void PvmProduct(int* t, void* x, void* y, int* n, int* info) { builtin(Op::kProduct, t, x, y, n, info); }

int pvm_joingroup(char* group) { return ask("pvm_joingroup", GroupOp::kJoin, group, 0); }
int pvm_lvgroup(char* group) {
  int r = ask("pvm_lvgroup", GroupOp::kLeave, group, 0);
  return r < 0 ? r : PvmOk;
}
int pvm_gsize(char* group) { return ask("pvm_gsize", GroupOp::kSize, group, 0); }
int pvm_getinst(char* group, int tid) {
  int rank = mosix::pvm::rank_of_tid(tid);
  if (rank < 0) return group_error("pvm_getinst", PvmBadParam);
  return ask("pvm_getinst", GroupOp::kInstOf, group, rank);
}
int pvm_gettid(char* group, int inst) {
  if (inst < 0) return group_error("pvm_gettid", PvmBadParam);
  int rank = ask("pvm_gettid", GroupOp::kRankOf, group, inst);
  return rank < 0 ? rank : tid_of_rank(rank);
}
int pvm_barrier(char* group, int count) {
  if (count == 0 || count < -1) return group_error("pvm_barrier", PvmBadParam);
  int r = ask("pvm_barrier", GroupOp::kBarrier, group, count);
  return r < 0 ? r : PvmOk;
}
// Waits until the group has `size` members (-1: its size now), as PVM's does.
int pvm_freezegroup(char* group, int size) {
  if (size < -1) return group_error("pvm_freezegroup", PvmBadParam);
  int r = ask("pvm_freezegroup", GroupOp::kFreeze, group, size);
  return r < 0 ? r : PvmOk;
}

int pvm_bcast(char* group, int msgtag) {
  if (msgtag < 0) return group_error("pvm_bcast", PvmBadParam);
  std::vector<int> ranks;
  int n = ask("pvm_bcast", GroupOp::kMembers, group, 0, &ranks);
  if (n < 0) return n;
  std::vector<int> tids;
  for (int r : ranks) {
    if (r >= 0 && r != task().rank()) tids.push_back(tid_of_rank(r));
  }
  if (tids.empty()) return PvmOk;
  return pvm_mcast(tids.data(), static_cast<int>(tids.size()), msgtag);
}

int pvm_reduce(void (*func)(int*, void*, void*, int*, int*), void* data, int count, int datatype, int msgtag,
               char* group, int rootginst) {
  std::size_t size = datatype == PVM_STR ? 0 : mosix::pvm::datatype_size(datatype);
  if (func == nullptr || count < 0 || (count > 0 && data == nullptr) || size == 0 || msgtag < 0 || rootginst < 0) {
    return group_error("pvm_reduce", PvmBadParam);
  }
  std::vector<int> ranks;
  int members = ask("pvm_reduce", GroupOp::kMembers, group, 0, &ranks);
  if (members < 0) return members;
  if (rootginst >= static_cast<int>(ranks.size()) || ranks[static_cast<std::size_t>(rootginst)] < 0) {
    return group_error("pvm_reduce", PvmNoInst);
  }
  const int root = ranks[static_cast<std::size_t>(rootginst)];
  bool member = false;
  for (int r : ranks) member = member || r == task().rank();
  if (!member) return group_error("pvm_reduce", PvmNotInGroup);
  const std::size_t bytes = size * static_cast<std::size_t>(count);
  int saved_sbuf = pvm_setsbuf(0), saved_rbuf = pvm_setrbuf(0);
  int result = PvmOk;
  if (root != task().rank()) {
    pvm_setsbuf(pvm_mkbuf(PvmDataRaw));
    pvm_pkbyte(static_cast<char*>(data), static_cast<int>(bytes), 1);
    result = pvm_send(tid_of_rank(root), msgtag);
    pvm_freebuf(pvm_getsbuf());
  } else {
    std::vector<char> theirs(bytes);
    for (int r : ranks) {
      if (r < 0 || r == root) continue;
      int id = pvm_recv(tid_of_rank(r), msgtag);
      if (id < 0) {
        result = id;
        break;
      }
      int len = 0;
      pvm_bufinfo(id, &len, nullptr, nullptr);
      if (static_cast<std::size_t>(len) != bytes) {
        result = group_error("pvm_reduce", PvmMismatch);
        pvm_freebuf(id);
        break;
      }
      pvm_upkbyte(theirs.data(), static_cast<int>(bytes), 1);
      pvm_freebuf(id);
      int info = PvmOk, dt = datatype, n = count;
      func(&dt, data, theirs.data(), &n, &info);
      if (info < 0) {
        result = group_error("pvm_reduce", info);
        break;
      }
    }
  }
  pvm_setsbuf(saved_sbuf);
  pvm_setrbuf(saved_rbuf);
  return result;
}

}  // extern "C"

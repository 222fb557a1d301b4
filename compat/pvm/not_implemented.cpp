// The rest of PVM 3.4.6's API (pvm3.h), so that every PVM binary loads: the
// mailbox, contexts, message handlers, gather/scatter, formatted packing and
// the resource-manager hooks answer PvmNotImpl (and say so while
// PvmAutoErr is on); contexts answer the base context, which is all there is.
#include <pvm3.h>

#include <cstdio>

namespace {

int not_implemented(const char* function) {
  if (pvm_getopt(PvmAutoErr) != 0) {
    std::fprintf(stderr, "libpvm: %s(): Not implemented under mosixrun\n", function);
  }
  return PvmNotImpl;
}

}  // namespace

extern "C" {

int pvm_getcontext(void) { return PvmBaseContext; }
int pvm_setcontext(int ctx) { return ctx == PvmBaseContext ? PvmBaseContext : not_implemented("pvm_setcontext"); }
int pvm_newcontext(void) { return not_implemented("pvm_newcontext"); }
int pvm_freecontext(int ctx) { return ctx == PvmBaseContext ? PvmOk : not_implemented("pvm_freecontext"); }
// The environment a spawned task gets is the spawner's whole environment already.
int pvm_export(char*) { return PvmOk; }
int pvm_unexport(char*) { return PvmOk; }
char* pvm_strerror(void) {
  static char none[] = "";
  return none;
}

int pvm_addmhf(int, int, int, int (*)(int)) { return not_implemented("pvm_addmhf"); }
int pvm_delmhf(int) { return not_implemented("pvm_delmhf"); }
int pvm_delete(char*, int) { return not_implemented("pvm_delete"); }
int pvm_insert(char*, int, int) { return not_implemented("pvm_insert"); }
int pvm_lookup(char*, int, int*) { return not_implemented("pvm_lookup"); }
int pvm_delinfo(char*, int, int) { return not_implemented("pvm_delinfo"); }
int pvm_putinfo(char*, int, int) { return not_implemented("pvm_putinfo"); }
int pvm_recvinfo(char*, int, int) { return not_implemented("pvm_recvinfo"); }
int pvm_getmboxinfo(char*, int*, struct pvmmboxinfo**) { return not_implemented("pvm_getmboxinfo"); }
int pvm_gather(void*, void*, int, int, int, char*, int) { return not_implemented("pvm_gather"); }
int pvm_scatter(void*, void*, int, int, int, char*, int) { return not_implemented("pvm_scatter"); }
int pvm_getminfo(int, struct pvmminfo*) { return not_implemented("pvm_getminfo"); }
int pvm_setminfo(int, struct pvmminfo*) { return not_implemented("pvm_setminfo"); }
int pvm_getmwid(int) { return not_implemented("pvm_getmwid"); }
int pvm_setmwid(int, int) { return not_implemented("pvm_setmwid"); }
int pvm_getnoresets(int**, int* n) {
  if (n) *n = 0;
  return PvmOk;
}
int pvm_hostsync(int, struct timeval*, struct timeval*) { return not_implemented("pvm_hostsync"); }
int pvm_packf(const char*, ...) { return not_implemented("pvm_packf"); }
int pvm_unpackf(const char*, ...) { return not_implemented("pvm_unpackf"); }
int pvm_pkmesg(int) { return not_implemented("pvm_pkmesg"); }
int pvm_pkmesgbody(int) { return not_implemented("pvm_pkmesgbody"); }
int pvm_upkmesg(void) { return not_implemented("pvm_upkmesg"); }
// Declared so by pvm3.h: it returns the previous matching function (none: PVM's own).
int (*pvm_recvf(int (*)(int, int, int)))(int (*)(int, int, int)) { return nullptr; }
int pvm_reg_hoster(void) { return not_implemented("pvm_reg_hoster"); }
int pvm_reg_rm(struct pvmhostinfo**) { return not_implemented("pvm_reg_rm"); }
int pvm_reg_tasker(void) { return not_implemented("pvm_reg_tasker"); }
int pvm_reg_tracer(int, int, int, int, char*, int, int) { return not_implemented("pvm_reg_tracer"); }
int pvm_tickle(int, int*, int*, int*) { return not_implemented("pvm_tickle"); }

}  // extern "C"

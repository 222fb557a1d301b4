/* libgpvm3.so.3: PVM's group functions are in our libpvm3.so.3, which this
   library needs; binaries linked against both find them there. */
int mosix_gpvm3_is_libpvm3(void);
int mosix_gpvm3_is_libpvm3(void) { return 1; }

/* The restorer's last instructions, copied to a page of their own at
   kTrampolineBase (reserved_range.h) because they unmap the restorer itself. They
   use no stack and no memory but the TrampThread / TrampShared records
   (trampoline.h) whose offsets are spelled out below.

   Every thread ends the same way: register the program's rseq area, its
   robust futex list, then rt_sigreturn with the stack pointer at a signal
   frame built on the thread's own stack. rt_sigreturn is the only way to load
   every register at once, including the FPU/SSE/AVX state from the XSAVE
   area the frame points to, the signal mask and the sigaltstack. */

#define T_UC 0
#define T_FS 8
#define T_TIDADDR 16
#define T_ROBUST 24
#define T_ROBUST_LEN 32
#define T_RSEQ 40
#define T_RSEQ_LEN 48
#define T_RSEQ_SIG 52
#define S_READY 0
#define S_GO 4
#define S_NEED 8
#define S_UNMAP_ADDR 16
#define S_UNMAP_LEN 24

#define SYS_munmap 11
#define SYS_rt_sigreturn 15
#define SYS_clone 56
#define SYS_arch_prctl 158
#define SYS_futex 202
#define SYS_set_tid_address 218
#define SYS_set_robust_list 273
#define SYS_rseq 334
#define ARCH_SET_FS 0x1002
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

.macro REGISTER_PER_THREAD
        mov T_RSEQ(%r12), %rdi
        test %rdi, %rdi
        jz 8f
        mov T_RSEQ_LEN(%r12), %esi
        xor %edx, %edx
        mov T_RSEQ_SIG(%r12), %r10d
        mov $SYS_rseq, %eax
        syscall
8:      mov T_ROBUST(%r12), %rdi
        test %rdi, %rdi
        jz 9f
        mov T_ROBUST_LEN(%r12), %rsi
        mov $SYS_set_robust_list, %eax
        syscall
9:
.endm

.macro SIGRETURN
        mov T_UC(%r12), %rsp
        mov $SYS_rt_sigreturn, %eax
        syscall
        ud2
.endm

        .section .text.mosix_trampoline, "ax", @progbits
        .p2align 12
        .globl mosix_tramp_begin
mosix_tramp_begin:

/* long mosix_tramp_clone(flags, stack, ptid, ctid, tls, TrampThread* t,
                          TrampShared* s): the parent gets the new tid back;
   the child goes on below with r12 = t, r13 = s. */
        .globl mosix_tramp_clone
mosix_tramp_clone:
        push %r12
        push %r13
        mov %r9, %r12
        mov 24(%rsp), %r13
        mov %rcx, %r10
        mov $SYS_clone, %eax
        syscall
        test %rax, %rax
        jz 1f
        pop %r13
        pop %r12
        ret
1:      REGISTER_PER_THREAD
        lock incl S_READY(%r13)
        lea S_READY(%r13), %rdi
        mov $FUTEX_WAKE_PRIVATE, %esi
        mov $1, %edx
        mov $SYS_futex, %eax
        syscall
2:      mov S_GO(%r13), %eax
        test %eax, %eax
        jnz 3f
        lea S_GO(%r13), %rdi
        mov $FUTEX_WAIT_PRIVATE, %esi
        xor %edx, %edx
        xor %r10d, %r10d
        mov $SYS_futex, %eax
        syscall
        jmp 2b
3:      SIGRETURN

/* noreturn mosix_tramp_main(TrampThread* t, TrampShared* s): the thread-group
   leader. Unmaps the restorer (including the stack it was called on), takes
   the program's TLS and tid address, waits until every other thread is
   ready, lets them all go and returns into the program itself. */
        .globl mosix_tramp_main
mosix_tramp_main:
        mov %rdi, %r12
        mov %rsi, %r13
        mov S_UNMAP_ADDR(%r13), %rdi
        mov S_UNMAP_LEN(%r13), %rsi
        mov $SYS_munmap, %eax
        syscall
        mov $ARCH_SET_FS, %edi
        mov T_FS(%r12), %rsi
        mov $SYS_arch_prctl, %eax
        syscall
        mov T_TIDADDR(%r12), %rdi
        mov $SYS_set_tid_address, %eax
        syscall
        mov T_TIDADDR(%r12), %rdi
        test %rdi, %rdi
        jz 4f
        mov %eax, (%rdi)
4:      REGISTER_PER_THREAD
5:      mov S_READY(%r13), %edx
        cmp S_NEED(%r13), %edx
        jae 6f
        lea S_READY(%r13), %rdi
        mov $FUTEX_WAIT_PRIVATE, %esi
        xor %r10d, %r10d
        mov $SYS_futex, %eax
        syscall
        jmp 5b
6:      movl $1, S_GO(%r13)
        lea S_GO(%r13), %rdi
        mov $FUTEX_WAKE_PRIVATE, %esi
        mov $0x7fffffff, %edx
        mov $SYS_futex, %eax
        syscall
        SIGRETURN

        .globl mosix_tramp_end
mosix_tramp_end:

        .section .note.GNU-stack, "", @progbits

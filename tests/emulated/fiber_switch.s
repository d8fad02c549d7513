# emu_fiber_switch(void** save_sp, void* to_sp): the CUDA emulator's context switch (cuda_emu.h), x86-64
# System V. Pushes the callee-saved registers and the SSE/x87 control words on the current stack, stores
# the stack pointer in *save_sp, loads to_sp and pops the same layout from there. glibc's swapcontext also
# saves and restores the signal mask: a system call per switch, which cost more than the kernels did.
    .text
    .globl emu_fiber_switch
    .hidden emu_fiber_switch
    .type emu_fiber_switch, @function
emu_fiber_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_fiber_switch, .-emu_fiber_switch
    .section .note.GNU-stack,"",@progbits

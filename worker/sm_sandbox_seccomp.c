/* sm_sandbox_seccomp: the seccomp filter of every sandbox run, built with libseccomp and handed
 * to bubblewrap (--seccomp FD) as compiled BPF in a memfd. Default: allow. Denied with EPERM:
 * the syscalls an untrusted grader program never needs (io_uring, keys, bpf, userfaultfd, perf,
 * ptrace and cross-process memory access, mounts, namespaces, modules, kexec, swap, reboot,
 * clocks, quotas, handles, SysV and POSIX message IPC, socket families other than unix, inet,
 * inet6 and netlink, TIOCSTI). clone3 gets ENOSYS (its flags cannot be inspected, libc falls
 * back to clone). In single-process mode, a new process (fork, vfork, clone without
 * CLONE_THREAD) and memfd_create get ENOMEM: the run must stay one address space, so that
 * RLIMIT_AS bounds it as a whole. */
#include "sm_sandbox_exec.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* Denied with EPERM in every run. Names unknown to this libseccomp/kernel are skipped. */
static const char *const denied[] = {"io_uring_setup",
                                     "io_uring_enter",
                                     "io_uring_register",
                                     "keyctl",
                                     "add_key",
                                     "request_key",
                                     "bpf",
                                     "userfaultfd",
                                     "perf_event_open",
                                     "fanotify_init",
                                     "lookup_dcookie",
                                     "ptrace",
                                     "process_vm_readv",
                                     "process_vm_writev",
                                     "process_madvise",
                                     "kcmp",
                                     "pidfd_getfd",
                                     "mount",
                                     "umount2",
                                     "pivot_root",
                                     "chroot",
                                     "move_mount",
                                     "fsopen",
                                     "fsconfig",
                                     "fsmount",
                                     "fspick",
                                     "open_tree",
                                     "mount_setattr",
                                     "unshare",
                                     "setns",
                                     "kexec_load",
                                     "kexec_file_load",
                                     "init_module",
                                     "finit_module",
                                     "delete_module",
                                     "create_module",
                                     "get_kernel_syms",
                                     "query_module",
                                     "swapon",
                                     "swapoff",
                                     "reboot",
                                     "acct",
                                     "quotactl",
                                     "quotactl_fd",
                                     "name_to_handle_at",
                                     "open_by_handle_at",
                                     "settimeofday",
                                     "clock_settime",
                                     "clock_adjtime",
                                     "adjtimex",
                                     "sethostname",
                                     "setdomainname",
                                     "iopl",
                                     "ioperm",
                                     "syslog",
                                     "vhangup",
                                     "uselib",
                                     "ustat",
                                     "sysfs",
                                     "_sysctl",
                                     "nfsservctl",
                                     "memfd_secret",
                                     "migrate_pages",
                                     "move_pages",
                                     "io_setup",
                                     "io_submit",
                                     "shmget",
                                     "shmat",
                                     "shmctl",
                                     "shmdt",
                                     "msgget",
                                     "msgsnd",
                                     "msgrcv",
                                     "msgctl",
                                     "semget",
                                     "semop",
                                     "semctl",
                                     "semtimedop",
                                     "mq_open",
                                     "mq_unlink",
                                     "mq_timedsend",
                                     "mq_timedreceive",
                                     "mq_notify",
                                     "mq_getsetattr",
                                     NULL};

/* clone flags that would make new namespaces (user namespaces are also off by bwrap). */
static const unsigned long ns_flags[] = {CLONE_NEWNS,     CLONE_NEWUTS, CLONE_NEWIPC,
                                         CLONE_NEWUSER,   CLONE_NEWPID, CLONE_NEWNET,
                                         CLONE_NEWCGROUP, 0x00000080UL /* CLONE_NEWTIME */};

static int add_rules(scmp_filter_ctx ctx, bool single_process)
{
    int rc = 0;
    for (int i = 0; denied[i] && rc == 0; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* socket families: unix (1), inet (2), inet6 (10), netlink (16) only; a value with high
     * bits set compares greater than 16 and is refused too */
    for (int fam = 0; fam <= 16 && rc == 0; fam++) {
        if (fam == AF_UNIX || fam == AF_INET || fam == AF_INET6 || fam == AF_NETLINK)
            continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam));
    }
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_GT, (scmp_datum_t)AF_NETLINK));
    /* no typing into a terminal (ioctl's command is 32 bits: compare those only) */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TIOCSTI));
    if (rc == 0 && single_process) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOMEM), SCMP_SYS(fork), 0);
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOMEM), SCMP_SYS(vfork), 0);
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOMEM), SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
        /* shared memory outside the address space (fds are cheap, RLIMIT_FSIZE is per file) */
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOMEM), SCMP_SYS(memfd_create), 0);
    } else if (rc == 0) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(memfd_create), 0);
    }
    return rc;
}

sm_code sbx_seccomp_fd(bool single_process, int *fd_out, sm_err *err)
{
    *fd_out = -1;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return sm_err_set(err, SM_EINTERNAL, "sandbox: seccomp_init failed");
    int rc = add_rules(ctx, single_process);
    if (rc != 0) {
        seccomp_release(ctx);
        return sm_err_set(err, SM_EINTERNAL, "sandbox: seccomp rule: %s", strerror(-rc));
    }
    int fd = memfd_create("sm-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        int en = errno;
        seccomp_release(ctx);
        return sm_err_set(err, SM_EIO, "sandbox: memfd for seccomp: %s", strerror(en));
    }
    rc = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (rc != 0 || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return sm_err_set(err, SM_EINTERNAL, "sandbox: seccomp_export_bpf: %s",
                          strerror(rc ? -rc : errno));
    }
    *fd_out = fd;
    return SM_OK;
}

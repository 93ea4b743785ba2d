/* fork and copy-on-write: a child sees the parent's data, its writes stay its own (private
 * anonymous memory, the brk heap, the stack) or reach the parent (shared anonymous memory);
 * wait4 reports exit statuses, a death by signal, and ECHILD. Children print nothing: they
 * report through their exit status, so the output order never depends on scheduling. */
#include "guest.h"
#include <signal.h>
#include <sys/resource.h>

#define PAGES 16

static char *private_region, *shared_region, *heap_block;

/* Child: checks it sees the parent's data, then overwrites all of it. Exit status: one bit
 * per failed check. */
static int child_checks_and_writes(uint64_t stack_value)
{
    int status = 0;
    if (check_pattern(private_region, PAGES * PAGE_SIZE_4K, 11) >= 0)
        status |= 1;
    if (check_pattern(heap_block, 4 * PAGE_SIZE_4K, 12) >= 0)
        status |= 2;
    if (stack_value != 0x1234)
        status |= 4;
    if (shared_region[0] != 'P')
        status |= 8;
    fill_pattern(private_region, PAGES * PAGE_SIZE_4K, 21);
    fill_pattern(heap_block, 4 * PAGE_SIZE_4K, 22);
    shared_region[0] = 'C';
    if (check_pattern(private_region, PAGES * PAGE_SIZE_4K, 21) >= 0)
        status |= 16;
    return status;
}

static void print_status(const char *label, pid_t pid, pid_t waited, int status)
{
    if (waited != pid) {
        printf("%s: wait4 returned another pid or failed (%s)\n", label, errno_name(errno));
    } else if (WIFEXITED(status)) {
        printf("%s: exited with %d\n", label, WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        printf("%s: killed by signal %d\n", label, WTERMSIG(status));
    } else {
        printf("%s: other status %#x\n", label, status);
    }
}

int main(void)
{
    volatile uint64_t stack_value = 0x1234;
    private_region = map_region(PAGES * PAGE_SIZE_4K, PAGE_SIZE_4K, PROT_READ | PROT_WRITE);
    shared_region = mmap(NULL, PAGE_SIZE_4K, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    heap_block = malloc(4 * PAGE_SIZE_4K);
    if (shared_region == MAP_FAILED || !heap_block)
        die("allocation");
    fill_pattern(private_region, PAGES * PAGE_SIZE_4K, 11);
    fill_pattern(heap_block, 4 * PAGE_SIZE_4K, 12);
    shared_region[0] = 'P';

    pid_t pid = fork_or_die();
    if (pid == 0)
        _exit(child_checks_and_writes(stack_value));
    int status = 0;
    pid_t waited = wait4(pid, &status, 0, NULL);
    print_status("child 1 (checks and overwrites; 0 = all checks passed)", pid, waited, status);
    print_check("parent private data after child wrote", check_pattern(private_region, PAGES * PAGE_SIZE_4K, 11));
    print_check("parent heap data after child wrote", check_pattern(heap_block, 4 * PAGE_SIZE_4K, 12));
    printf("parent stack value: %#llx\n", (unsigned long long)stack_value);
    printf("shared byte written by child: %c\n", shared_region[0]);

    /* The parent writes after the fork while the child waits on a pipe, then the child checks
     * it still sees the values from the time of the fork. */
    int go;
    pid = fork_held_child(&go);
    if (pid == 0)
        _exit(check_pattern(private_region, PAGES * PAGE_SIZE_4K, 11) < 0 && shared_region[0] == 'Q' ? 0 : 1);
    fill_pattern(private_region, PAGES * PAGE_SIZE_4K, 31);
    shared_region[0] = 'Q';
    release_child(go);
    waited = wait4(pid, &status, 0, NULL);
    print_status("child 2 (sees pre-fork private data and the parent's later shared write; 0 = yes)", pid, waited,
                 status);

    pid = fork_or_die();
    if (pid == 0)
        _exit(42);
    waited = wait4(pid, &status, 0, NULL);
    print_status("child 3 (exit 42)", pid, waited, status);

    pid = fork_or_die();
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        mprotect(private_region, PAGE_SIZE_4K, PROT_READ);
        private_region[0] = 1;
        _exit(0);
    }
    waited = wait4(pid, &status, 0, NULL);
    print_status("child 4 (writes to a read-only page)", pid, waited, status);
    print_check("parent page 0 still writable", (private_region[0] = 5) == 5 ? -1 : 0);

    /* A child that forks a grandchild and exits with the grandchild's status plus one. */
    pid = fork_or_die();
    if (pid == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0)
            _exit(check_pattern(private_region + PAGE_SIZE_4K, PAGE_SIZE_4K, 31 ^ 1) < 0 ? 6 : 60);
        int grand_status = 0;
        if (grandchild < 0 || waitpid(grandchild, &grand_status, 0) != grandchild)
            _exit(99);
        _exit(WEXITSTATUS(grand_status) + 1);
    }
    waited = wait4(pid, &status, 0, NULL);
    print_status("child 5 (grandchild exits 6, child adds 1)", pid, waited, status);

    errno = 0;
    waited = wait4(-1, &status, WNOHANG, NULL);
    print_result("wait4(-1, WNOHANG) with no children left", waited, errno);
    errno = 0;
    waited = wait4(pid, &status, 0, NULL);
    print_result("wait4(reaped child)", waited, errno);
    return 0;
}

/* O_NONBLOCK on pipes: pipe2(O_NONBLOCK) and fcntl(F_SETFL) make a read of an empty pipe and a
 * write to a full one fail with EAGAIN instead of waiting; a write that finds room for part of
 * its data returns the part; F_GETFL reports the flag and F_SETFL changes only the status flags
 * of the open file (shared with dup'd descriptors). The pipe fills by pages (16 of them), which
 * the byte counts below show. Without O_NONBLOCK, a write larger than the pipe returns only once
 * a reader has taken all of it. */
#include "guest.h"

static void print_flags(const char *label, int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        printf("%s: F_GETFL failed %s\n", label, errno_name(errno));
    else
        printf("%s: F_GETFL = %#x\n", label, flags);
}

static void try_read(const char *label, int fd, size_t length)
{
    static char buffer[8192];
    errno = 0;
    long n = read(fd, buffer, length);
    print_result(label, n, errno);
}

static void try_write(const char *label, int fd, const char *data, size_t length)
{
    errno = 0;
    long n = write(fd, data, length);
    print_result(label, n, errno);
}

/* Writes chunk-sized pieces of a pattern until the pipe refuses; prints the total and why it stopped. */
static long fill(const char *label, int fd, const char *data, size_t chunk)
{
    long total = 0;
    ssize_t n;
    errno = 0;
    while ((n = write(fd, data + total % 4096, chunk)) > 0)
        total += n;
    printf("%s: %ld bytes, then %s\n", label, total, errno_name(errno));
    return total;
}

/* Reads everything waiting (the pipe must be O_NONBLOCK) and hashes it. */
static void drain(const char *label, int fd)
{
    static char buffer[4096];
    uint64_t hash = HASH_INIT;
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) {
        hash = hash_bytes(hash, buffer, (size_t)n);
        total += n;
    }
    printf("%s: %ld bytes, hash %016llx, then %s\n", label, total, (unsigned long long)hash, errno_name(errno));
}

int main(void)
{
    static char pattern[200000];
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (char)(i * 131 + (i >> 12));

    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        die("pipe2");
    print_flags("pipe2(O_NONBLOCK) read end", fds[0]);
    print_flags("pipe2(O_NONBLOCK) write end", fds[1]);
    try_read("read of an empty O_NONBLOCK pipe", fds[0], 16);
    try_read("read of 0 bytes", fds[0], 0);
    fill("1000-byte writes until full", fds[1], pattern, 1000);
    try_write("96 more bytes (fit the last page)", fds[1], pattern, 96);
    try_write("1 more byte", fds[1], pattern, 1);
    try_read("read 5000", fds[0], 5000);
    try_write("write 10000 with one page free (partial)", fds[1], pattern, 10000);
    try_write("write 1 after that", fds[1], pattern, 1);
    drain("drained", fds[0]);
    try_write("write 100000 into the empty pipe (partial)", fds[1], pattern, 100000);
    drain("drained", fds[0]);
    close(fds[0]);
    close(fds[1]);

    if (pipe(fds) != 0)
        die("pipe");
    print_flags("pipe() read end", fds[0]);
    print_flags("pipe() write end", fds[1]);
    print_result("F_SETFL O_NONBLOCK|O_WRONLY on the read end", fcntl(fds[0], F_SETFL, O_NONBLOCK | O_WRONLY), errno);
    print_flags("read end after F_SETFL (access mode unchanged)", fds[0]);
    try_read("read of the empty pipe", fds[0], 16);
    int copy = dup(fds[1]);
    if (copy < 0)
        die("dup");
    print_result("F_SETFL O_NONBLOCK on a dup of the write end", fcntl(copy, F_SETFL, O_NONBLOCK), errno);
    print_flags("original write end (shares the open file)", fds[1]);
    fill("4096-byte writes until full", fds[1], pattern, 4096);
    try_write("write 1 to the full pipe", fds[1], pattern, 1);
    try_read("read 3", fds[0], 3);
    try_write("write 1 (the first page has room but is not the last)", fds[1], pattern, 1);
    try_read("read 4093 (frees the first page)", fds[0], 4093);
    try_write("write 4097 (one page free)", fds[1], pattern, 4097);
    drain("drained", fds[0]);
    print_result("F_SETFL 0 on the write end", fcntl(fds[1], F_SETFL, 0), errno);
    print_flags("write end after clearing", fds[1]);
    try_write("blocking write of 10 into an empty pipe", fds[1], pattern, 10);
    drain("drained", fds[0]);
    close(copy);

    /* Without O_NONBLOCK a write larger than the pipe waits for the reader and returns only when all
     * of it is written. */
    int go;
    pid_t pid = fork_held_child(&go);
    if (pid == 0) {
        print_result("F_SETFL 0 on the read end", fcntl(fds[0], F_SETFL, 0), errno);
        close(fds[1]);
        static char received[sizeof pattern];
        long total = 0;
        ssize_t n;
        while ((n = read(fds[0], received + total, sizeof received - (size_t)total)) > 0)
            total += n;
        printf("child read %ld bytes until end of file: %s\n", total,
               total == (long)sizeof pattern && memcmp(received, pattern, sizeof pattern) == 0 ? "same bytes" : "DIFFERENT");
        fflush(stdout);
        _exit(0);
    }
    close(fds[0]);
    release_child(go);
    errno = 0;
    long written = write(fds[1], pattern, sizeof pattern);
    int error = errno;
    close(fds[1]);
    wait_and_report(pid);
    print_result("blocking write of 200000 while a child reads", written, error);
    return 0;
}

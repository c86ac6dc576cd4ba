/* rusage_exec: run one command, report its wall time, CPU and max RSS.
 *
 * Why not wait4() straight from the Python harness: Linux records the RSS
 * high-water mark of the address space a child had at exec() time into the
 * child's max RSS, and a child forked (or vforked) from the harness starts
 * with the harness's whole address space.  Every measured tool would then
 * report at least the harness's own RSS (hundreds of MB once truth files are
 * scored).  This launcher is tiny, so a child forked from it starts at ~1 MB.
 *
 * wait4() gives the child's rusage including its reaped descendants (CPU
 * summed, max RSS = the largest single process), as in ../shared/bench.
 *
 *   build: cc -O2 -o rusage_exec rusage_exec.c
 *   usage: rusage_exec RESULT.json PROG [ARG...]
 *   RESULT.json: {"wall":s,"user":s,"sys":s,"maxrss_kb":n,"rc":n}
 *   exit status: the child's (128+signal if it was killed).                  */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double tv(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s RESULT.json PROG [ARG...]\n", argv[0]);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("rusage_exec: fork"); return 2; }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0) {
        if (errno != EINTR) { perror("rusage_exec: wait4"); return 2; }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *f = fopen(argv[1], "w");
    if (!f) { perror(argv[1]); return 2; }
    fprintf(f, "{\"wall\":%.6f,\"user\":%.6f,\"sys\":%.6f,\"maxrss_kb\":%ld,\"rc\":%d}\n",
            (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
            tv(ru.ru_utime), tv(ru.ru_stime), ru.ru_maxrss, rc);
    fclose(f);
    return rc;
}

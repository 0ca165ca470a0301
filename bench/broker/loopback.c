/*
 * The loopback TCP ceiling of the consume benchmark (bench/broker/bench.py):
 * what a server that sends log segments with sendfile(2) and a client that
 * only reads them into a reused buffer can move over loopback on this
 * machine, with no protocol and no parsing.
 *
 *   loopback receive PORT        listen on 127.0.0.1:PORT, print "listening",
 *                                read one connection to EOF into a 1 MiB
 *                                buffer, print "<bytes> <seconds>" (timed
 *                                from the first byte to EOF)
 *   loopback send PORT FILE...   connect and send the files with sendfile(2)
 *
 * Built by bench/run with `cc -O2`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static int fail(const char *what) {
    fprintf(stderr, "loopback: %s: %s\n", what, strerror(errno));
    return 1;
}

static struct sockaddr_in loopback_addr(const char *port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family      = AF_INET;
    a.sin_port        = htons((unsigned short)atoi(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int receive(const char *port) {
    struct sockaddr_in a = loopback_addr(port);
    int one = 1, s = socket(AF_INET, SOCK_STREAM, 0), c;
    static char buf[CHUNK];
    long long total;
    ssize_t n;
    double start;
    if (s < 0)
        return fail("socket");
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0)
        return fail("bind");
    if (listen(s, 1) < 0)
        return fail("listen");
    printf("listening\n");
    fflush(stdout);
    if ((c = accept(s, NULL, NULL)) < 0)
        return fail("accept");
    if ((n = read(c, buf, sizeof buf)) < 0)
        return fail("read");
    start = now_s();
    total = n;
    while (n > 0) {
        if ((n = read(c, buf, sizeof buf)) < 0)
            return fail("read");
        total += n;
    }
    printf("%lld %.6f\n", total, now_s() - start);
    return 0;
}

static int send_files(const char *port, int nfiles, char **files) {
    struct sockaddr_in a = loopback_addr(port);
    int s = socket(AF_INET, SOCK_STREAM, 0), i;
    if (s < 0)
        return fail("socket");
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0)
        return fail("connect");
    for (i = 0; i < nfiles; i++) {
        struct stat st;
        off_t off = 0;
        int fd = open(files[i], O_RDONLY);
        if (fd < 0 || fstat(fd, &st) < 0)
            return fail(files[i]);
        while (off < st.st_size) {
            ssize_t n = sendfile(s, fd, &off, (size_t)(st.st_size - off));
            if (n < 0)
                return fail("sendfile");
            if (n == 0) {
                fprintf(stderr, "loopback: %s shrank while being sent\n", files[i]);
                return 1;
            }
        }
        close(fd);
    }
    shutdown(s, SHUT_WR);
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "receive"))
        return receive(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "send"))
        return send_files(argv[2], argc - 3, argv + 3);
    fprintf(stderr, "usage: loopback receive PORT | loopback send PORT FILE...\n");
    return 2;
}

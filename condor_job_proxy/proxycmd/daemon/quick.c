/*
 * The ProxyCommand's fast client, compiled: the same client as quick.py (read that file for
 * why it exists), which a Python start costs more than the whole daemon round trip. It keeps
 * quick.py's contract exactly: the same request bytes, the same environment context and
 * socket name, the same answers, and the same fallback to the full proxy command.
 *
 *     cjp-quick SOCKET_BASE PYTHON -m condor_job_proxy ... connect ... %n %r
 *     cjp-quick --private-dir DIR      (a `Match exec` in the include: see private_dir)
 *
 * `condor-job-proxy setup` (and `config refresh`) builds it with the machine's C compiler,
 * when there is one, into the state directory; otherwise ssh runs quick.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

#define START_ENV "CONDOR_JOB_PROXY_START_DAEMON"
#define REFUSAL_ENV "CONDOR_JOB_PROXY_REFUSAL"   /* the line to show through ssh (refusal.py) */
#define REPLY_LIMIT 65536
#define MODULUS ((UINT64_C(1) << 61) - 1)
#define SECONDS 60
#define CHUNK 65536          /* condor_job_proxy.proxycmd.handoff.CHUNK */

static const char *const context_names[] = {
    "PATH", "HOME", "TMPDIR", "SSH_AUTH_SOCK", "XDG_CONFIG_HOME", "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR", NULL};
static const char *const context_prefixes[] = {"CONDOR_", "_CONDOR_", "PYTHON", "AWS_", NULL};

/* Run the full proxy command in this process, telling it where to start a daemon if asked. */
/* The full command, started as a daemon's starter when START_DAEMON_AT is given; with
   REFUSAL (the daemon's line) it only shows that line through ssh, connecting nowhere again. */
static void become_told(char **command, const char *start_daemon_at, const char *refusal)
{
    size_t count = 0;
    while (environ[count])
        count++;
    char **env = calloc(count + 3, sizeof *env);
    size_t used = 0;
    if (env == NULL)
        _exit(255);
    for (size_t i = 0; i < count; i++)
        if (strncmp(environ[i], START_ENV "=", sizeof START_ENV) != 0
            && strncmp(environ[i], REFUSAL_ENV "=", sizeof REFUSAL_ENV) != 0)
            env[used++] = environ[i];
    char *start = NULL, *told = NULL;
    if (start_daemon_at && asprintf(&start, "%s=%s", START_ENV, start_daemon_at) >= 0)
        env[used++] = start;
    if (refusal && *refusal && asprintf(&told, "%s=%s", REFUSAL_ENV, refusal) >= 0)
        env[used++] = told;
    env[used] = NULL;
    execve(command[0], command, env);
    dprintf(2, "condor-job-proxy: cannot run %s: %s\n", command[0], strerror(errno));
    _exit(255);
}

static void become(char **command, const char *start_daemon_at)
{
    become_told(command, start_daemon_at, NULL);
}

static int in_context(const char *entry)
{
    size_t length = strcspn(entry, "=");
    if (entry[length] != '=' || (length == strlen(START_ENV) && !strncmp(entry, START_ENV, length)))
        return 0;
    for (const char *const *name = context_names; *name; name++)
        if (strlen(*name) == length && !strncmp(entry, *name, length))
            return 1;
    for (const char *const *prefix = context_prefixes; *prefix; prefix++)
        if (length >= strlen(*prefix) && !strncmp(entry, *prefix, strlen(*prefix)))
            return 1;
    return 0;
}

static int by_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* quick.py's socket_path: the NUL-joined entries as a little-endian number, mod 2**61 - 1. */
static uint64_t context_hash(char **entries, size_t count)
{
    uint64_t number = 0;
    for (size_t i = count; i-- > 0;) {
        const unsigned char *entry = (const unsigned char *)entries[i];
        for (size_t j = strlen(entries[i]); j-- > 0;)
            number = (uint64_t)(((unsigned __int128)number * 256 + entry[j]) % MODULUS);
        if (i > 0)
            number = (uint64_t)(((unsigned __int128)number * 256) % MODULUS);
    }
    return number;
}

static int send_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t sent = send(fd, data, length, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            return -1;
        data += sent;
        length -= (size_t)sent;
    }
    return 0;
}

/* The request: "1" ("1r" when we will relay, not hand the socket to ssh), the command's word
   count, its words, then the context; NUL between. */
static int send_request(int fd, char **command, char **entries, size_t count, int pass_fd)
{
    size_t words = 0;
    while (command[words])
        words++;
    char number[32];
    snprintf(number, sizeof number, "%zu", words);
    const char *protocol = pass_fd ? "1" : "1r";
    if (send_all(fd, protocol, strlen(protocol)) || send_all(fd, "", 1)
        || send_all(fd, number, strlen(number)))
        return -1;
    for (size_t i = 0; i < words; i++)
        if (send_all(fd, "", 1) || send_all(fd, command[i], strlen(command[i])))
            return -1;
    for (size_t i = 0; i < count; i++)
        if (send_all(fd, "", 1) || send_all(fd, entries[i], strlen(entries[i])))
            return -1;
    return shutdown(fd, SHUT_WR);
}

/* The first part of the answer and the fd it carries (-1 if none); -1 if the daemon is gone. */
static ssize_t receive_answer(int fd, char *answer, size_t size, int *received)
{
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec part = {answer, size};
    struct msghdr message = {.msg_iov = &part, .msg_iovlen = 1,
                             .msg_control = control.space, .msg_controllen = sizeof control.space};
    ssize_t got;
    do
        got = recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
    while (got < 0 && errno == EINTR);
    *received = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS
                && c->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(received, CMSG_DATA(c), sizeof(int));
    return got;
}

/* condor_job_proxy.proxycmd.handoff.stdout_takes_fd: OpenSSH with ProxyUseFdpass gives one
   socketpair as both stdin and stdout. Node's child_process.spawn gives each stream a socketpair of its own and
   throws a passed fd away; it, paramiko and any pipe get the relay. */
static int ssh_takes_fd(void)
{
    struct stat in, out;
    return fstat(0, &in) == 0 && fstat(1, &out) == 0 && S_ISSOCK(out.st_mode)
        && in.st_dev == out.st_dev && in.st_ino == out.st_ino;
}

/* write() until every byte is out, waiting where the descriptor is non-blocking. */
static int write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t done = write(fd, data, length);
        if (done < 0 && (errno == EINTR || errno == EAGAIN)) {
            struct pollfd writable = {fd, POLLOUT, 0};
            poll(&writable, 1, -1);
            continue;
        }
        if (done <= 0)
            return -1;
        data += done;
        length -= (size_t)done;
    }
    return 0;
}

/* condor_job_proxy.proxycmd.handoff.relay: stdin -> the connection (then half-close it, so the
   job's sshd sees the end) and the connection -> stdout, until the job side closes or our caller goes. */
static void relay(int connection)
{
    static char buffer[CHUNK];
    struct pollfd streams[2] = {{connection, POLLIN, 0}, {0, POLLIN, 0}};
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        if (poll(streams, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (streams[0].revents) {
            ssize_t got = read(connection, buffer, sizeof buffer);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
                return;
            if (got > 0 && write_all(1, buffer, (size_t)got) != 0)
                return;
        }
        if (streams[1].revents) {
            ssize_t got = read(0, buffer, sizeof buffer);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0 || write_all(connection, buffer, (size_t)got) != 0) {
                shutdown(connection, SHUT_WR);
                streams[1].fd = -1;       /* poll skips it from now on */
            }
        }
    }
}

/* ProxyUseFdpass: ssh's end of our stdout takes the connection. */
static int give_to_ssh(int connection)
{
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    char byte = 0;
    struct iovec part = {&byte, 1};
    struct msghdr message = {.msg_iov = &part, .msg_iovlen = 1,
                             .msg_control = control.space, .msg_controllen = sizeof control.space};
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &connection, sizeof(int));
    ssize_t sent;
    do
        sent = sendmsg(1, &message, 0);
    while (sent < 0 && errno == EINTR);
    return sent == 1 ? 0 : -1;
}

/* condor_job_proxy.proxycmd.errors.report: stderr, and the terminal when ssh put stderr on
   /dev/null (it does for a ProxyCommand whenever ControlPersist is on). */
static int stderr_hidden(void)
{
    struct stat err, null;
    return fstat(2, &err) == 0 && stat("/dev/null", &null) == 0 && S_ISCHR(err.st_mode)
        && err.st_rdev == null.st_rdev;
}

static void report(const char *line, size_t length)
{
    ssize_t ignored = write(2, line, length);
    if (!stderr_hidden())
        return;
    int terminal = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (terminal < 0)
        return;
    ignored = write(terminal, line, length);
    (void)ignored;
    close(terminal);
}

/* The rest of an answer, after its first read; how much there is in all. */
static size_t read_rest(int fd, char *answer, size_t got)
{
    ssize_t more;
    while (got < REPLY_LIMIT && (more = recv(fd, answer + got, REPLY_LIMIT - got, 0)) > 0)
        got += (size_t)more;
    return got;
}

/* The line of an "E<status>\n<line>\n" answer, read whole and NUL-terminated in place. */
static const char *told_line(int fd, char *answer, size_t got)
{
    got = read_rest(fd, answer, got);
    answer[got < REPLY_LIMIT ? got : REPLY_LIMIT - 1] = '\0';
    char *newline = strchr(answer, '\n');
    if (newline == NULL)
        return NULL;
    newline[1 + strcspn(newline + 1, "\n")] = '\0';
    return newline + 1;
}

/* "E<status>\n<line>": the rest of the line may follow in more reads. */
static void fail_as_told(int fd, char *answer, size_t got)
{
    got = read_rest(fd, answer, got);
    char *newline = memchr(answer, '\n', got);
    int status = 255;
    if (newline) {
        *newline = '\0';
        status = atoi(answer + 1);
        report(newline + 1, got - (size_t)(newline + 1 - answer));
    }
    _exit(status);
}

/* Whether the daemon at the other end runs as us: in a directory under /tmp another user's
   socket must never get our request (its environment may hold credentials). */
static int peer_is_us(int fd)
{
    struct ucred peer;
    socklen_t size = sizeof peer;
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) == 0 && peer.uid == getuid();
}

/* condor_job_proxy.common.files.private_dir_problem: create DIR 0700 if missing; 0 only
   if it is a real directory (lstat) of ours that no one else may enter, else the reason, on stderr unless
   quiet. ssh runs `--private-dir DIR` (a `Match exec`) before each use of a shared connection
   socket in /tmp, and connects without sharing when it fails, rather than talk to a socket
   someone else planted there; the client checks a daemon socket's directory the same way
   before it has the full command start a daemon there. */
static int private_dir(const char *dir, int quiet)
{
    struct stat info;
    char problem[256];
    if (lstat(dir, &info) != 0 && (errno != ENOENT || (mkdir(dir, 0700) != 0 && errno != EEXIST)
                                   || lstat(dir, &info) != 0))
        snprintf(problem, sizeof problem, ": %s;", strerror(errno));
    else if (!S_ISDIR(info.st_mode) || info.st_uid != getuid())
        snprintf(problem, sizeof problem, " is not a directory of yours:");
    else if (info.st_mode & 077)
        snprintf(problem, sizeof problem, " is open to other users:");
    else
        return 0;
    if (!quiet)
        dprintf(2, "condor-job-proxy: %s%s connecting without a shared connection (remove it, "
                "or run: condor-job-proxy doctor)\n", dir, problem);
    return 1;
}

/* The daemon socket to have the full command start a daemon at, if its directory is ours. */
static const char *daemon_to_start(const char *path)
{
    char *dir = strdup(path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash == NULL || slash == dir)
        return NULL;
    *slash = '\0';
    return private_dir(dir, 1) == 0 ? path : NULL;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--private-dir") == 0)
        return private_dir(argv[2], 0);
    if (argc < 3) {
        dprintf(2, "usage: %s SOCKET_BASE PROXY_COMMAND...\n", argv[0]);
        return 255;
    }
    char **command = argv + 2;
    int pass_fd = ssh_takes_fd();

    size_t count = 0, total = 0;
    while (environ[total])
        total++;
    char **entries = calloc(total + 1, sizeof *entries);
    if (entries == NULL)
        become(command, NULL);
    for (size_t i = 0; i < total; i++)
        if (in_context(environ[i]))
            entries[count++] = environ[i];
    qsort(entries, count, sizeof *entries, by_bytes);

    struct sockaddr_un address = {.sun_family = AF_UNIX};
    char *path = NULL;
    if (asprintf(&path, "%s-%012llx.sock", argv[1],     /* 48 bits: socket paths are short */
                 (unsigned long long)(context_hash(entries, count) & UINT64_C(0xFFFFFFFFFFFF))) < 0)
        become(command, NULL);
    if (strlen(path) >= sizeof address.sun_path)
        become(command, NULL);
    strcpy(address.sun_path, path);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval limit = {SECONDS, 0};
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0)
        become(command, daemon_to_start(path));
    if (!peer_is_us(fd))
        become(command, NULL);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    if (send_request(fd, command, entries, count, pass_fd) != 0)
        become(command, NULL);     /* a daemon that stopped half way: a daemon is there */

    static char answer[REPLY_LIMIT];
    int connection;
    ssize_t got = receive_answer(fd, answer, sizeof answer, &connection);
    if (got > 0 && answer[0] == 'K' && connection >= 0) {
        if (got > 1) {                 /* a line for the user comes with it */
            got = (ssize_t)read_rest(fd, answer, (size_t)got);
            report(answer + 1, (size_t)got - 1);
        }
        if (!pass_fd) {
            relay(connection);
            _exit(0);
        }
        _exit(give_to_ssh(connection) == 0 ? 0 : 255);
    }
    if (got > 0 && answer[0] == 'E') {
        if (pass_fd || stderr_hidden())   /* the full command hands ssh a refusal server */
            become_told(command, NULL, told_line(fd, answer, (size_t)got));
        fail_as_told(fd, answer, (size_t)got);
    }
    become(command, NULL);
    return 255;
}

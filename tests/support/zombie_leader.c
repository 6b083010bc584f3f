/* A process whose main thread has called pthread_exit while another thread
 * runs on: /proc shows it as a zombie, yet it lives. It writes its pid to
 * argv[1] without a lock, prints "ready", and ends when its standard input
 * is closed. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *live_on(void *unused) {
    char byte;
    (void)unused;
    while (read(0, &byte, 1) > 0) {
    }
    _exit(0);
}

int main(int argc, char **argv) {
    pthread_t thread;
    FILE *file;
    if (argc != 2 || !(file = fopen(argv[1], "w"))) {
        return 2;
    }
    fprintf(file, "%d\n", (int)getpid());
    fclose(file);
    if (pthread_create(&thread, NULL, live_on, NULL) != 0) {
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    pthread_exit(NULL);
}

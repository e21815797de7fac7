/* sy_signal: clean shutdown — SIGINT/SIGTERM set a flag the run loops poll. */
#include "sy_signal.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (stop_flag)
        signal(sig, SIG_DFL); /* the next one ends us */
    stop_flag = 1;
    stop_signal = sig;
}

void sy_signal_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool sy_signal_stop_requested(void)
{
    return stop_flag != 0;
}

int sy_signal_which(void)
{
    return stop_signal;
}

void sy_signal_request_stop(void)
{
    stop_flag = 1;
}

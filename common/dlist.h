/*  dlist.h: intrusive doubly-linked FIFOs, by field name.
 *
 *  A list is a pair of head/tail pointers in some struct; a member links in
 *  through a pair of prev/next pointer fields of its own (a struct can be in
 *  several lists through several pairs). The macros name the fields, in the
 *  spirit of BSD's <sys/queue.h>, so every list keeps readable names
 *  (st->rhead, t->rnext) and no list needs hand-written link code.
 *
 *      DLIST_APPEND(st->rhead, st->rtail, t, rprev, rnext);
 *      DLIST_REMOVE(st->rhead, st->rtail, t, rprev, rnext);
 */
#ifndef TC_DLIST_H
#define TC_DLIST_H

#include <stddef.h>

/*  Adds n at the tail. n must not be in the list. */
#define DLIST_APPEND(head, tail, n, prev, next)                                                    \
    do {                                                                                           \
        (n)->prev = (tail);                                                                        \
        (n)->next = NULL;                                                                          \
        if (tail)                                                                                  \
            (tail)->next = (n);                                                                    \
        else                                                                                       \
            (head) = (n);                                                                          \
        (tail) = (n);                                                                              \
    } while (0)

/*  Adds n at the head. n must not be in the list. */
#define DLIST_PREPEND(head, tail, n, prev, next)                                                   \
    do {                                                                                           \
        (n)->next = (head);                                                                        \
        (n)->prev = NULL;                                                                          \
        if (head)                                                                                  \
            (head)->prev = (n);                                                                    \
        else                                                                                       \
            (tail) = (n);                                                                          \
        (head) = (n);                                                                              \
    } while (0)

/*  Takes n out of the list (n must be in it) and clears its links. */
#define DLIST_REMOVE(head, tail, n, prev, next)                                                    \
    do {                                                                                           \
        if ((n)->prev)                                                                             \
            (n)->prev->next = (n)->next;                                                           \
        else                                                                                       \
            (head) = (n)->next;                                                                    \
        if ((n)->next)                                                                             \
            (n)->next->prev = (n)->prev;                                                           \
        else                                                                                       \
            (tail) = (n)->prev;                                                                    \
        (n)->prev = (n)->next = NULL;                                                              \
    } while (0)

#endif

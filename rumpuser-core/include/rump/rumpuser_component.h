/*
 * rump/rumpuser_component.h: helpers for host-side halves of rump kernel
 * drivers (shmif, sockin, virtif, ugenhc, netsmb). Not covered by
 * RUMPUSER_VERSION; matches NetBSD's lib/librumpuser/rumpuser_component.h.
 */
#ifndef _RUMP_RUMPUSER_COMPONENT_H_
#define _RUMP_RUMPUSER_COMPONENT_H_

#include <rump/rumpuser.h>

#ifdef __cplusplus
extern "C" {
#endif

void *rumpuser_component_unschedule(void);
void rumpuser_component_schedule(void *);
void rumpuser_component_kthread(void);
void rumpuser_component_kthread_release(void);
void rumpuser_component_switchlwp(struct lwp *);
struct lwp *rumpuser_component_curlwp(void);
int rumpuser_component_errtrans(int);

#ifdef __cplusplus
}
#endif

#endif /* _RUMP_RUMPUSER_COMPONENT_H_ */

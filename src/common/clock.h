/* libiadsr - the monotonic clock (clock.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CLOCK_H
#define IADSR_CLOCK_H

double iadsr__now(void); /* monotonic seconds */

#endif /* IADSR_CLOCK_H */

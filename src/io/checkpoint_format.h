/* libiadsr - checkpoint format version (written by checkpoint.c, reported by
 * iadsr_format_version()).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_FORMAT_H
#define IADSR_FORMAT_H

#define IADSR__FORMAT_MAJOR 1
#define IADSR__FORMAT_MINOR 2

#endif /* IADSR_FORMAT_H */

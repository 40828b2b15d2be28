/* libiadsr - identification of the public handles.
 * SPDX-License-Identifier: MIT
 *
 * Every handle starts with a magic word so that a foreign or freed pointer
 * is reported as IADSR_ERR_INVALID_ARG instead of being used.
 */
#ifndef IADSR_HANDLE_H
#define IADSR_HANDLE_H

#define IADSR__MAGIC_DATASET 0x49445354u /* "IDST" */
#define IADSR__MAGIC_MODEL 0x494d444cu   /* "IMDL" */
#define IADSR__MAGIC_TRAINER 0x49545252u /* "ITRR" */
#define IADSR__MAGIC_CTX 0x49435458u     /* "ICTX" */
#define IADSR__MAGIC_DEAD 0xdeadbeefu

#endif /* IADSR_HANDLE_H */

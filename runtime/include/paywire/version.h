#ifndef PAYWIRE_VERSION_H
#define PAYWIRE_VERSION_H

#define PW_VERSION_MAJOR  0
#define PW_VERSION_MINOR  1
#define PW_VERSION_PATCH  0
#define PW_VERSION_STRING "0.1.0"
/** One number for compile-time checks: 0xMMmmpp. Generated code checks it. */
#define PW_VERSION_NUMBER ((PW_VERSION_MAJOR << 16) | (PW_VERSION_MINOR << 8) | PW_VERSION_PATCH)

#if defined(__GNUC__)
#define PW_EXTERN                    __attribute__((visibility("default")))
#define PW_PRINTF(fmt_idx, args_idx) __attribute__((format(printf, fmt_idx, args_idx)))
#else
#define PW_EXTERN
#define PW_PRINTF(fmt_idx, args_idx)
#endif

#endif

/* error.c: the error table and version. */
#include "internal.h"

const char *ixr_strerror(int err) {
  switch (err) {
    case 0: return "success";
#define XX(name, msg) \
  case IXR_E##name: return msg;
    IXR_ERRNO_MAP(XX)
#undef XX
    default: return "unknown error";
  }
}

const char *ixr_err_name(int err) {
  switch (err) {
    case 0: return "OK";
#define XX(name, msg) \
  case IXR_E##name: return "E" #name;
    IXR_ERRNO_MAP(XX)
#undef XX
    default: return "EUNKNOWN";
  }
}

const char *ixr_version(void) { return IXR_VERSION_STRING; }
unsigned ixr_version_hex(void) { return IXR_VERSION_HEX; }

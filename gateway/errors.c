/*  errors.c: the rows of errors.h's table. */
#include "errors.h"

#define GW_ERROR_ROW(id, close, http, code, sentence) [GW_E_##id] = {close, http, code, sentence},
static const gw_error_info_t s_errors[GW_E_COUNT] = {GW_ERRORS(GW_ERROR_ROW)};
#undef GW_ERROR_ROW

const gw_error_info_t *
gw_error_info(gw_error_t e)
{
    return &s_errors[e < GW_E_COUNT ? e : GW_E_INTERNAL];
}

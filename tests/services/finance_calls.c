/* finance_calls.c: calls to finance-server that its tests share (finance_calls.h). */
#include <paywire/paywire.h>
#include "finance_calls.h"
#include "pw_test.h"
#include "paywire/finance/v1/settlement.pw.h"

int64_t finance_report_sum(pw_channel *ch, const char *batch_id, int *n)
{
    Paywire__Finance__V1__StreamSettlementReportRequest req =
        PAYWIRE__FINANCE__V1__STREAM_SETTLEMENT_REPORT_REQUEST__INIT;
    req.batch_id = (char *)batch_id;
    req.mode = PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    pw_stream *st = NULL;
    assert_int_equal(paywire_finance_v1_settlement_service_stream_settlement_report_start_blocking(
                         ch, &req, NULL, &st),
                     PW_OK);
    int64_t sum = 0;
    *n = 0;
    for (;;) {
        Paywire__Finance__V1__StreamSettlementReportResponse *page = NULL;
        assert_int_equal(
            paywire_finance_v1_settlement_service_stream_settlement_report_stream_recv(st, &page),
            PW_OK);
        if (page == NULL) {
            break;
        }
        for (size_t i = 0; i < page->n_lines; i++) {
            sum += page->lines[i]->amount->amount_minor;
            (*n)++;
        }
        pw_protobuf_free(&page->base);
    }
    assert_int_equal(pw_stream_finish(st, NULL, NULL), PW_OK);
    pw_stream_free(st);
    return sum;
}

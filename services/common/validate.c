/* validate.c: field checks shared by the services (countries, currencies, text, URLs, IBANs,
 * wallets). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "svc.h"

/* ISO 3166-1 alpha-2, officially assigned codes. */
static const char countries[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR "
    "BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ "
    "EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW "
    "GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY "
    "KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV "
    "MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY "
    "QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG "
    "TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM "
    "ZW";

/* ISO 4217 active currency codes, and the tokens in our registry. */
static const char currencies[] =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
    "GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR "
    "KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK "
    "MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR "
    "SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH "
    "UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL "
    "USDC USDT EURC PYUSD";

static int in_list(const char *list, const char *code, size_t min, size_t max)
{
    size_t n = code ? strlen(code) : 0;
    if (n < min || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (code[i] < 'A' || code[i] > 'Z') {
            return 0;
        }
    }
    const char *p = list;
    while ((p = strstr(p, code)) != NULL) {
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
            return 1;
        }
        p += n;
    }
    return 0;
}

int svc_country_ok(const char *code)
{
    return in_list(countries, code, 2, 2);
}

int svc_currency_ok(const char *code)
{
    return in_list(currencies, code, 3, 5);
}

int svc_text_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

int svc_email_ok(const char *s)
{
    if (!svc_text_ok(s, 254) || strchr(s, ' ') != NULL) {
        return 0;
    }
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || strchr(at + 1, '@') != NULL) {
        return 0;
    }
    const char *dot = strrchr(at + 1, '.');
    return dot != NULL && dot > at + 1 && dot[1] != '\0';
}

/* 1 for hosts a public URL must not name. */
static int private_host(const char *host)
{
    if (strcmp(host, "localhost") == 0 || strstr(host, ".localhost") != NULL ||
        strstr(host, ".internal") != NULL) {
        return 1;
    }
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1) {
        return a[0] == 10 || a[0] == 127 || a[0] == 0 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
               (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254) ||
               (a[0] == 100 && (a[1] & 0xc0) == 64);
    }
    char v6[64];
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(v6)) {
        memcpy(v6, host + 1, n - 2);
        v6[n - 2] = '\0';
        if (inet_pton(AF_INET6, v6, a) != 1) {
            return 1;
        }
        static const unsigned char loop[16] = {[15] = 1};
        return memcmp(a, loop, 16) == 0 || (a[0] & 0xfe) == 0xfc ||
               (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
    }
    return 0;
}

int svc_https_url_ok(const char *s, int public_only)
{
    if (!svc_text_ok(s, 2048) || strncmp(s, "https://", 8) != 0 || strchr(s, ' ') != NULL) {
        return 0;
    }
    const char *h = s + 8;
    size_t hn = strcspn(h, "/?#");
    char host[256];
    if (hn == 0 || hn >= sizeof(host) || memchr(h, '@', hn) != NULL) {
        return 0;
    }
    memcpy(host, h, hn);
    host[hn] = '\0';
    /* Drop a port (after the last ':' outside brackets). */
    char *colon = strrchr(host, ':');
    if (colon != NULL && strchr(colon, ']') == NULL) {
        for (const char *p = colon + 1; *p; p++) {
            if (!isdigit((unsigned char)*p)) {
                return 0;
            }
        }
        *colon = '\0';
    }
    if (host[0] == '\0') {
        return 0;
    }
    for (const char *p = host; *p; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '[' || *p == ']' ||
              *p == ':')) {
            return 0;
        }
    }
    return !public_only || !private_host(host);
}

/* ---- IBAN ---- */

static const struct {
    char cc[3];
    int len;
} iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AT", 20}, {"BE", 16}, {"BG", 22}, {"BH", 22}, {"CH", 21},
    {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"EE", 20}, {"ES", 24}, {"FI", 18},
    {"FR", 27}, {"GB", 22}, {"GI", 23}, {"GR", 27}, {"HR", 21}, {"HU", 28}, {"IE", 22},
    {"IL", 23}, {"IS", 26}, {"IT", 27}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21},
    {"MC", 27}, {"MT", 31}, {"NL", 18}, {"NO", 15}, {"PL", 28}, {"PT", 25}, {"RO", 24},
    {"SA", 24}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"TR", 26},
};

int svc_iban_ok(const char *s)
{
    char iban[40];
    size_t n = 0;
    for (; s != NULL && *s; s++) {
        if (*s == ' ') {
            continue;
        }
        if (n == sizeof(iban) - 1 || !isalnum((unsigned char)*s)) {
            return 0;
        }
        iban[n++] = (char)toupper((unsigned char)*s);
    }
    iban[n] = '\0';
    if (n < 15) {
        return 0;
    }
    int want = 0;
    for (size_t i = 0; i < sizeof(iban_lengths) / sizeof(iban_lengths[0]); i++) {
        if (strncmp(iban, iban_lengths[i].cc, 2) == 0) {
            want = iban_lengths[i].len;
        }
    }
    if (want == 0 || (size_t)want != n || !isdigit((unsigned char)iban[2]) ||
        !isdigit((unsigned char)iban[3])) {
        return 0;
    }
    /* Move the first four characters to the end, letters as 10..35, mod 97 must be 1. */
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        char c = iban[(k + 4) % n];
        if (isdigit((unsigned char)c)) {
            rem = (rem * 10 + (unsigned)(c - '0')) % 97;
        } else {
            rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
        }
    }
    return rem == 1;
}

/* ---- wallets ---- */

/* Keccak-256 (the pre-standard SHA-3 padding Ethereum uses), for EIP-55 checksums. */
static uint64_t rotl(uint64_t x, int n)
{
    return n ? x << n | x >> (64 - n) : x;
}

static void keccak_f(uint64_t st[25])
{
    static const uint64_t rc[24] = {
        0x0000000000000001ull, 0x0000000000008082ull, 0x800000000000808aull, 0x8000000080008000ull,
        0x000000000000808bull, 0x0000000080000001ull, 0x8000000080008081ull, 0x8000000000008009ull,
        0x000000000000008aull, 0x0000000000000088ull, 0x0000000080008009ull, 0x000000008000000aull,
        0x000000008000808bull, 0x800000000000008bull, 0x8000000000008089ull, 0x8000000000008003ull,
        0x8000000000008002ull, 0x8000000000000080ull, 0x000000000000800aull, 0x800000008000000aull,
        0x8000000080008081ull, 0x8000000000008080ull, 0x0000000080000001ull, 0x8000000080008008ull};
    static const int rho[25] = {0,  1,  62, 28, 27, 36, 44, 6,  55, 20, 3,  10, 43,
                                25, 39, 41, 45, 15, 21, 8,  18, 2,  61, 56, 14};
    for (int round = 0; round < 24; round++) {
        uint64_t c[5], d[5], b[25];
        for (int x = 0; x < 5; x++) {
            c[x] = st[x] ^ st[x + 5] ^ st[x + 10] ^ st[x + 15] ^ st[x + 20];
        }
        for (int x = 0; x < 5; x++) {
            d[x] = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1);
        }
        for (int i = 0; i < 25; i++) {
            st[i] ^= d[i % 5];
        }
        for (int x = 0; x < 5; x++) {
            for (int y = 0; y < 5; y++) {
                b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(st[x + 5 * y], rho[x + 5 * y]);
            }
        }
        for (int x = 0; x < 5; x++) {
            for (int y = 0; y < 5; y++) {
                st[x + 5 * y] = b[x + 5 * y] ^ (~b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);
            }
        }
        st[0] ^= rc[round];
    }
}

#define KECCAK256_RATE 136

/* XORs one rate-sized block into the state (little-endian lanes) and permutes. */
static void keccak_absorb(uint64_t st[25], const uint8_t *block)
{
    for (size_t i = 0; i < KECCAK256_RATE / 8; i++) {
        uint64_t w = 0;
        for (int k = 7; k >= 0; k--) {
            w = w << 8 | block[i * 8 + (size_t)k];
        }
        st[i] ^= w;
    }
    keccak_f(st);
}

static void keccak256(const uint8_t *in, size_t len, uint8_t out[32])
{
    uint64_t st[25] = {0};
    for (; len >= KECCAK256_RATE; in += KECCAK256_RATE, len -= KECCAK256_RATE) {
        keccak_absorb(st, in);
    }
    /* The last, partial (maybe empty) block with Keccak's pad10*1 (0x01 ... 0x80). */
    uint8_t block[KECCAK256_RATE] = {0};
    memcpy(block, in, len);
    block[len] ^= 0x01;
    block[KECCAK256_RATE - 1] ^= 0x80;
    keccak_absorb(st, block);
    for (int i = 0; i < 32; i++) {
        out[i] = (uint8_t)(st[i / 8] >> (8 * (i % 8)));
    }
}

/* 0x + 40 hex; all lower or all upper case, or the EIP-55 mixed-case checksum. */
static int evm_ok(const char *a)
{
    if (strlen(a) != 42 || a[0] != '0' || a[1] != 'x') {
        return 0;
    }
    int lower = 0, upper = 0;
    char low[41];
    for (int i = 0; i < 40; i++) {
        char c = a[2 + i];
        if (!isxdigit((unsigned char)c)) {
            return 0;
        }
        lower |= c >= 'a' && c <= 'f';
        upper |= c >= 'A' && c <= 'F';
        low[i] = (char)tolower((unsigned char)c);
    }
    low[40] = '\0';
    if (!(lower && upper)) {
        return 1;
    }
    uint8_t h[32];
    keccak256((const uint8_t *)low, 40, h);
    for (int i = 0; i < 40; i++) {
        int nibble = (h[i / 2] >> (i % 2 ? 0 : 4)) & 0xf;
        char c = a[2 + i];
        if (isalpha((unsigned char)c) && ((nibble >= 8) != (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

/* Base58 (Bitcoin alphabet) to bytes; returns the length, or -1. */
static int base58_decode(const char *s, uint8_t *out, size_t cap)
{
    static const char alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    uint8_t buf[64] = {0};
    size_t n = strlen(s), used = 0;
    if (n == 0 || n > 64) {
        return -1;
    }
    size_t zeros = 0;
    while (zeros < n && s[zeros] == '1') {
        zeros++;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = strchr(alphabet, s[i]);
        if (p == NULL || s[i] == '\0') {
            return -1;
        }
        unsigned carry = (unsigned)(p - alphabet);
        for (size_t k = 0; k < used || carry; k++) {
            if (k == sizeof(buf)) {
                return -1;
            }
            carry += 58u * buf[k];
            buf[k] = (uint8_t)carry;
            carry >>= 8;
            if (k + 1 > used) {
                used = k + 1;
            }
        }
    }
    if (zeros + used > cap) {
        return -1;
    }
    memset(out, 0, zeros);
    for (size_t k = 0; k < used; k++) {
        out[zeros + k] = buf[used - 1 - k];
    }
    return (int)(zeros + used);
}

int svc_wallet_ok(int chain, const char *address)
{
    if (address == NULL) {
        return 0;
    }
    uint8_t raw[64];
    switch (chain) {
    case 1: /* Ethereum */
    case 2: /* Polygon */
    case 3: /* Base */
        return evm_ok(address);
    case 4: /* Solana: a 32-byte public key in base58 */
        return base58_decode(address, raw, sizeof(raw)) == 32;
    case 5: { /* Tron: base58check of 0x41 + 20 bytes */
        if (address[0] != 'T' || base58_decode(address, raw, sizeof(raw)) != 25 || raw[0] != 0x41) {
            return 0;
        }
        uint8_t h[32], h2[32];
        svc_sha256(raw, 21, h);
        svc_sha256(h, 32, h2);
        return memcmp(h2, raw + 21, 4) == 0;
    }
    default:
        return 0;
    }
}

/* "YYYY-MM-DD" naming a real day. */
int svc_date_ok(const char *s)
{
    int y, m, d;
    char tail;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || s[4] != '-' ||
        s[7] != '-' || y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1) {
        return 0;
    }
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= (m == 2 && !leap ? 28 : days[m - 1]);
}

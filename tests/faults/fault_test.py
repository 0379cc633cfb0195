#!/usr/bin/env python3
"""The money fault test (issue 20, tests/faults/README.md).

Starts its own PostgreSQL cluster and the real services (merchant, compliance,
finance, orchestration, two acquirer simulators, the chain simulator) with
mTLS, a webhook receiver that verifies and logs every delivery, and many
merchants; sends a seeded random mix of card payments, captures, cancels,
refunds, on-chain USDC payments paid through chain-sim, same-key retries and
different-key duplicates from concurrent workers while a seeded fault
injector kills services (and the webhook receiver) with SIGKILL, restarts
PostgreSQL with `pg_ctl restart -m immediate`, freezes and breaks the
simulators, reorganises the chain and delays webhooks. Then it lets the system drain (bounded) and checks that no money
was lost or made (CHECKS below). Exit 0 when every check passed, 1 on a
violation (the seed is printed with the first one), 2 when the stack could
not be set up.

  FAULT_SEED (default 20), FAULT_SECONDS (load time, default 110),
  FAULT_WORKERS (default 8), FAULT_MERCHANTS (default 12),
  FAULT_PG_PORT (default 15498), FAULT_PORT_BASE (default 15520: the
  services' ports, below the ephemeral range so a restart can always bind).
  FAULT_KEEP=1 keeps the work directory (logs, configs) afterwards.
  One run at a time per FAULT_PG_PORT on a machine (another work tree's ctest may
  run it too): a second waits for the first, up to FAULT_LOCK_WAIT s (default 600).

  fault_test.py --build BUILD_DIR [--source SOURCE_DIR]
"""
import argparse
import collections
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ORCH = "paywire.orchestration.v1.PaymentService"
CHAIN = "paywire.simulators.v1.ChainService"
# Test card numbers of acquirer.proto and how often the load uses each.
CARDS = [
    ("4242424242424242", 70),  # approves
    ("4000000000000002", 5),  # hard decline (do_not_honor)
    ("4000000000009995", 3),  # hard decline (insufficient_funds)
    ("4000000000000119", 8),  # soft decline at the first acquirer, approved by the second
    ("4000000000003001", 8),  # approved, answered after timeout_delay_ms (we time out first)
    ("4000000000003002", 3),  # the acquirer hangs (hang_ms), records nothing
]
CURRENCIES = ["USD", "EUR"]
# The fee schedule: (basis points, fixed minor units) per payment method; on-chain payments are
# USDC on Ethereum (6 decimals: 1 USDC = 1000000 minor units).
FEES = {"card": (290, 30), "on_chain": (100, 10000)}
TOKEN = "USDC"
# Confirmations an on-chain deposit needs to be final (orchestration's chain_confirmations); a
# reorg is injected only on blocks at most REORG_DEPTH deep, so it never drops a final deposit.
CONFIRMATIONS, REORG_DEPTH = 6, 3
# Webhook event types the merchants' endpoints subscribe to (empty: all).
TRANSIENT = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL", "UNKNOWN", "CANCELLED",
             "RESOURCE_EXHAUSTED", "unreachable"}


def log(msg):
    sys.stdout.write("faults: %s\n" % msg)
    sys.stdout.flush()


class Violation(Exception):
    pass


# ---------------------------------------------------------------- processes


class Cluster:
    """A PostgreSQL cluster of the test's own (scripts/pg with its own port and folder)."""

    def __init__(self, source, port, folder):
        self.source, self.port, self.folder = source, port, folder
        self.env = dict(os.environ, PW_PG_PORT=str(port), PW_PG_DIR=folder)
        self.bin = "/usr/lib/postgresql/15/bin"

    def pg(self, *args):
        subprocess.run(["bash", os.path.join(self.source, "scripts/pg")] + list(args),
                       env=self.env, check=True, stdout=subprocess.DEVNULL)

    def as_owner(self, cmd):
        return (["runuser", "-u", "postgres", "--"] + cmd) if os.getuid() == 0 else cmd

    def start(self):
        if os.path.exists(self.folder):
            self.stop()
            shutil.rmtree(self.folder)
        self.pg("start")
        # Enough connections for six services' pools and the checks.
        self.sql("postgres", "ALTER SYSTEM SET max_connections = 300")
        self.restart("fast")

    def restart(self, mode):
        subprocess.run(self.as_owner([self.bin + "/pg_ctl", "-D", self.folder + "/data", "-m", mode,
                                      "-w", "-t", "60", "restart"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        subprocess.run(self.as_owner([self.bin + "/pg_ctl", "-D", self.folder + "/data", "-m",
                                      "immediate", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def url(self, db, user="postgres"):
        return "postgresql://%s@127.0.0.1:%d/%s" % (user, self.port, db)

    def sql(self, db, query):
        """Rows of query (lists of strings); retried while the server restarts."""
        for i in range(100):
            p = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                                self.url(db), "-c", query], capture_output=True, text=True)
            if p.returncode == 0:
                return [line.split("\t") for line in p.stdout.splitlines() if line != ""]
            if "connect" not in p.stderr and "shutting down" not in p.stderr and \
                    "starting up" not in p.stderr and "terminating" not in p.stderr:
                raise RuntimeError("%s: %s: %s" % (db, query[:120], p.stderr.strip()))
            time.sleep(0.2)
        raise RuntimeError("%s: the cluster does not answer" % db)

    def scalar(self, db, query):
        rows = self.sql(db, query)
        return int(rows[0][0]) if rows and rows[0][0] != "" else 0


class Service:
    """One server process of the stack: its config, start, SIGKILL, freeze."""

    def __init__(self, t, name, binary, port, health, conf, dbname, env=None):
        self.t, self.name, self.binary, self.port, self.health = t, name, binary, port, health
        self.conf_extra, self.dbname, self.env = conf, dbname, env or {}
        self.proc = None
        self.conf_path = os.path.join(t.work, name + ".conf")
        self.log_path = os.path.join(t.work, name + ".log")
        self.lock = threading.Lock()

    def write_conf(self, extra=""):
        c, w = self.t.cluster, self.t.work
        with open(self.conf_path, "w") as f:
            f.write("listen = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\n" % (self.port,
                                                                            self.port + 50))
            f.write("database_url = %s\n" % c.url(self.dbname, self.dbname + "_app"))
            f.write("migrate_database_url = %s\n" % c.url(self.dbname, self.dbname + "_owner"))
            f.write("tls_cert = %s/certs/%s.crt\ntls_key = %s/certs/%s.key\n" % (w, self.name, w,
                                                                               self.name))
            f.write("tls_ca = %s/certs/ca.crt\n" % w)
            f.write("internal_identities = spiffe://paywire/tests,spiffe://paywire/merchant,"
                    "spiffe://paywire/orchestration,spiffe://paywire/compliance,"
                    "spiffe://paywire/finance\nlog_level = warning\nworkers = 1\n"
                    "db_connections = 6\n")
            f.write(self.conf_extra + extra)

    def migrate(self):
        self.write_conf()
        subprocess.run([self.binary, "--config", self.conf_path, "--migrate"],
                       env=dict(os.environ, **self.env), check=True,
                       stdout=subprocess.DEVNULL, stderr=open(self.log_path, "a"))

    def start(self, extra=""):
        with self.lock:
            self.write_conf(extra)
            self.proc = subprocess.Popen([self.binary, "--config", self.conf_path],
                                         env=dict(os.environ, **self.env),
                                         stdout=subprocess.DEVNULL,
                                         stderr=open(self.log_path, "a"))
            self.t.note_pid(self.proc.pid)
        self.wait_serving()

    def wait_serving(self, seconds=60):
        end = time.time() + seconds
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (%s); see %s" % (self.name, self.proc.returncode,
                                                               self.log_path))
            try:  # the admin listener's readiness: 200 once the service is SERVING
                urllib.request.urlopen("http://127.0.0.1:%d/readyz" % (self.port + 50),
                                       timeout=1)
                return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s did not become SERVING; see %s" % (self.name, self.log_path))

    def kill(self):
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
                self.proc.wait()

    def signal(self, sig):
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(sig)

    def stop(self):
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


# ---------------------------------------------------------------- the test


class FaultTest:
    def __init__(self, args):
        self.source, self.build = args.source, args.build
        self.seed = int(os.environ.get("FAULT_SEED", "20"))
        self.seconds = float(os.environ.get("FAULT_SECONDS", "110"))
        self.workers = int(os.environ.get("FAULT_WORKERS", "8"))
        self.n_merchants = int(os.environ.get("FAULT_MERCHANTS", "12"))
        self.base = int(os.environ.get("FAULT_PORT_BASE", "15520"))
        pg_port = int(os.environ.get("FAULT_PG_PORT", "15498"))
        self.work = "/tmp/pw-faults-%d" % os.getpid()
        self.cluster = Cluster(self.source, pg_port, "/var/tmp/pw-faults-pg-%d" % pg_port)
        self.pid_file = "/var/tmp/pw-faults-%d.pids" % pg_port
        self.lock_path = "/var/tmp/pw-faults-%d.lock" % pg_port
        self.pwctl = os.path.join(self.build, "clients/pwctl/pwctl")
        self.ops = collections.Counter()
        self.faults = collections.Counter()
        self.outcomes = collections.Counter()
        self.stats_lock = threading.Lock()
        # (method, idempotency key) -> what the first OK answer said; all later ones must agree.
        self.first = {}
        self.idem_lock = threading.Lock()
        self.idem_violations = []
        self.merchants = []
        self.api_keys = {}  # merchant id -> its API key's secret
        self.examples = {}  # an unexpected answer's code -> the first one (printed)
        self.stop_load = threading.Event()
        self.stop_miner = threading.Event()
        # Held while the chain's height moves (a block mined, a transfer sent: its own block) or a
        # reorg is chosen and made, so that a reorg never reaches a block deeper than it saw.
        self.chain_lock = threading.Lock()
        self.stop_faults = threading.Event()
        self.passed = []
        self.failed = []
        self.run_tag = "f%d" % self.seed

    # ---- calls

    def call(self, port, method, body, timeout_ms=15000, api_key=None):
        """(code, answer): code "OK", a gRPC code name, or "unreachable". As the internal test
        identity (mTLS), or as a merchant with its API key (TLS, no client certificate)."""
        cmd = [self.pwctl, "--embedded", "--addr", "localhost:%d" % port, "--cacert",
               self.work + "/certs/ca.crt", "--emit-defaults", "--timeout", str(timeout_ms)]
        if api_key is None:
            cmd += ["--cert", self.work + "/certs/tests.crt", "--key",
                    self.work + "/certs/tests.key"]
        else:
            cmd += ["-H", "authorization: Bearer " + api_key]
        cmd += ["call", method, json.dumps(body)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 10)
        except subprocess.TimeoutExpired:
            return "DEADLINE_EXCEEDED", {}
        if p.returncode == 0:
            line = p.stdout.strip().splitlines()
            return "OK", (json.loads(line[0]) if line else {})
        for line in p.stderr.splitlines():
            if line.strip().startswith("Code:"):
                return line.split(":", 1)[1].strip(), {"error": p.stderr.strip()}
        return "unreachable", {"error": p.stderr.strip()}

    def orch(self, method, body, key_for=None, merchant=None):
        """A merchant's call to orchestration, retried with the same request while the answer
        is transient (a service down, PostgreSQL restarting): as a merchant's client does.
        Every OK answer to the same idempotency key must name what the first one named."""
        end = time.time() + 90
        delay = 0.1
        while True:
            code, ans = self.call(self.svc["orchestration"].port, ORCH + "/" + method, body,
                                  api_key=self.api_keys.get(merchant))
            if code not in TRANSIENT or time.time() > end:
                break
            with self.stats_lock:
                self.ops["transient answer retried"] += 1
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        if code == "OK" and key_for is not None:
            self.remember(method, body["idempotencyKey"], key_for(ans))
        return code, ans

    def remember(self, method, key, identity):
        with self.idem_lock:
            k = (method, key)
            if k not in self.first:
                self.first[k] = identity
            elif self.first[k] != identity:
                self.idem_violations.append("%s %s: first %s, now %s" % (method, key,
                                                                         self.first[k], identity))

    # ---- setup

    def note_pid(self, pid):
        """Records a process this run started, so that the next run can end it if this one
        was killed before its teardown (a ctest timeout ends only this script)."""
        with open(self.pid_file, "a") as f:
            f.write("%d\n" % pid)

    def lock(self):
        """Takes the machine-wide lock of these ports (held until this process ends), so
        that a run never kills another's processes nor removes its cluster; waits for the
        run holding it. False when it is still held after FAULT_LOCK_WAIT seconds."""
        self.lock_file = open(self.lock_path, "a")
        end = time.time() + float(os.environ.get("FAULT_LOCK_WAIT", "600"))
        while True:
            try:
                fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.time() > end:
                    return False
                if not hasattr(self, "lock_waited"):
                    self.lock_waited = time.time()
                    log("waiting for the fault test that holds %s (another work tree's?)" %
                        self.lock_path)
                time.sleep(1)

    def end_leftovers(self):
        try:
            with open(self.pid_file) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    mine = b"/tmp/pw-faults-" in f.read()
            except OSError:
                continue
            if mine:
                log("ending pid %d, left over from an earlier run" % pid)
                os.kill(pid, signal.SIGKILL)
        open(self.pid_file, "w").close()

    def setup(self):
        self.end_leftovers()
        os.makedirs(self.work)
        subprocess.run(["bash", os.path.join(self.source, "scripts/certs"), self.work + "/certs",
                        "acquirer", "acquirer2", "chain"], check=True, stdout=subprocess.DEVNULL)
        self.cluster.start()
        b = self.build
        sim = os.path.join(b, "services/orchestration/simulators/acquirer-sim/acquirer-sim")
        p = {n: self.base + i for i, n in enumerate(
            ["merchant", "finance", "compliance", "orchestration", "acquirer", "acquirer2", "chain"])}
        self.receiver_port = self.base + 20
        key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
        sims = ("latency_min_ms = 2\nlatency_max_ms = 20\nhang_ms = 2500\n"
                "timeout_delay_ms = 2500\n")
        self.svc = {
            "merchant": Service(self, "merchant", b + "/services/merchant/merchant-server",
                                p["merchant"], "paywire.merchant.v1.MerchantService",
                                "audit_target = localhost:%d\nwebhook_loopback_http = 1\n" %
                                p["compliance"], "merchant",
                                {"PW_MERCHANT_ENCRYPTION_KEY": key}),
            "compliance": Service(self, "compliance", b + "/services/compliance/compliance-server",
                                  p["compliance"], "paywire.compliance.v1.ScreeningService", "",
                                  "compliance", {"PW_COMPLIANCE_ENCRYPTION_KEY": key}),
            "finance": Service(self, "finance", b + "/services/finance/finance-server",
                               p["finance"], "paywire.finance.v1.LedgerService",
                               "audit_target = localhost:%d\nfee_lead_seconds = 0\n" %
                               p["compliance"], "finance"),
            "acquirer": Service(self, "acquirer", sim, p["acquirer"],
                                "paywire.simulators.v1.AcquirerService",
                                sims + "seed = %d\nreference_prefix = sim1\n" % self.seed,
                                "acquirer"),
            "acquirer2": Service(self, "acquirer2", sim, p["acquirer2"],
                                 "paywire.simulators.v1.AcquirerService",
                                 sims + "seed = %d\nreference_prefix = sim2\n"
                                 "approve_cards = 4000000000000119\n" % (self.seed + 1),
                                 "acquirer2"),
            "chain": Service(self, "chain",
                             b + "/services/orchestration/simulators/chain-sim/chain-sim",
                             p["chain"], "paywire.simulators.v1.ChainService",
                             "seed = %d\ntokens = %s\n" % (self.seed + 2, TOKEN), "chain"),
            "orchestration": Service(
                self, "orchestration", b + "/services/orchestration/orchestration-server",
                p["orchestration"], "paywire.orchestration.v1.PaymentService",
                "connectors = acquirer_sim@localhost:%d/290/30,acquirer_sim2@localhost:%d/250/25\n"
                "compliance_target = localhost:%d\nfinance_target = localhost:%d\n"
                "merchant_target = localhost:%d\ncompliance_unavailable = open\n"
                "compliance_timeout_ms = 1000\nconnector_timeout_ms = 1500\n"
                "recovery_interval_ms = 200\nwebhook_timeout_ms = 1500\n"
                "webhook_backoff_initial_ms = 200\nwebhook_backoff_max_ms = 2000\n"
                "breaker_open_ms = 2000\nattempt_give_up_ms = 15000\n"
                "chain_target = localhost:%d\nchain_confirmations = %d\n"
                "chain_poll_interval_ms = 200\n" % (
                    p["acquirer"], p["acquirer2"], p["compliance"], p["finance"], p["merchant"],
                    p["chain"], CONFIRMATIONS),
                "orchestration"),
        }
        self.order = ["compliance", "merchant", "finance", "acquirer", "acquirer2", "chain",
                      "orchestration"]
        for name in self.order:
            s = self.svc[name]
            self.cluster.pg("service", s.dbname)
            s.migrate()
            s.start()
        self.sanctions_list()
        self.start_receiver()
        self.fee_schedule()
        self.make_merchants()

    def sanctions_list(self):
        """The OFAC SDN list into compliance (it screens on-chain wallets against it: without a
        list nothing can be screened), and its Ethereum wallets (the blocked payers)."""
        d = os.environ.get("PWSANCTIONS_DIR", os.path.join(self.source, "../shared/data/ofac-sdn"))
        subprocess.run([os.path.join(self.build, "clients/pwsanctions/pwsanctions"), "load",
                        "--dir", d, "--list", "ofac-sdn", "--version", "2021-07", "--addr",
                        "localhost:%d" % self.svc["compliance"].port, "--cacert",
                        self.work + "/certs/ca.crt", "--cert", self.work + "/certs/tests.crt",
                        "--key", self.work + "/certs/tests.key"], check=True,
                       stdout=subprocess.DEVNULL, stderr=open(self.work + "/pwsanctions.log", "a"))
        with open(os.path.join(d, "sdn_comments.csv"), errors="replace") as f:
            self.listed = sorted(set(w.lower() for w in re.findall(
                r"Digital Currency Address - ETH (0x[0-9a-fA-F]{40})", f.read())))
        if not self.listed:
            raise RuntimeError("no Ethereum wallet in %s/sdn_comments.csv" % d)

    def start_receiver(self, again=False):
        """The webhook receiver; again: after it was killed (its secrets and log kept: it takes
        the events its log accepted as seen, as a merchant's de-duplication store would)."""
        w = self.work
        self.receiver_log = w + "/deliveries.log"
        self.receiver_control = w + "/receiver.control"
        self.receiver_secrets = w + "/receiver.secrets"
        if not again:
            open(self.receiver_secrets, "w").close()
        self.receiver = subprocess.Popen(
            ["python3", os.path.join(self.source, "tests/services/webhook_receiver.py"), "--port",
             str(self.receiver_port), "--port-file", w + "/receiver.port", "--secret-file",
             self.receiver_secrets, "--log", self.receiver_log, "--control-file",
             self.receiver_control], stdout=subprocess.DEVNULL, stderr=open(w + "/receiver.err",
                                                                            "a"))
        self.note_pid(self.receiver.pid)
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.receiver_port,
                                       timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the webhook receiver did not start")

    def receiver_alive(self):
        return self.receiver.poll() is None

    def fee_schedule(self):
        rules = [{"method": "card", "currency": c, "basisPoints": FEES["card"][0],
                  "fixedMinor": str(FEES["card"][1])} for c in CURRENCIES]
        rules.append({"method": "on_chain", "currency": TOKEN, "basisPoints": FEES["on_chain"][0],
                      "fixedMinor": str(FEES["on_chain"][1])})
        at = int(time.time()) + 3
        eff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        code, ans = self.call(self.svc["finance"].port, "paywire.finance.v1.FeeService/"
                              "SetFeeSchedule", {"idempotencyKey": self.run_tag + "-fees",
                                                 "schedule": {"merchantId": "",
                                                              "effectiveTime": eff,
                                                              "rules": rules}})
        if code != "OK":
            raise RuntimeError("SetFeeSchedule: %s %s" % (code, ans))
        time.sleep(max(0, at - time.time()) + 0.2)  # every capture below is priced by it

    def make_merchants(self):
        mport = self.svc["merchant"].port
        for i in range(self.n_merchants):
            code, ans = self.call(mport, "paywire.merchant.v1.MerchantService/CreateMerchant", {
                "idempotencyKey": "%s-m%d" % (self.run_tag, i),
                "merchant": {"displayName": "Fault Shop %d" % i, "country": "DE",
                             "merchantCategoryCode": "5942", "currencies": CURRENCIES + [TOKEN],
                             "legalEntity": {"legalName": "Fault Shop %d GmbH" % i,
                                             "entityType": "ENTITY_TYPE_COMPANY",
                                             "taxId": "DE1234567%02d" % i,
                                             "registeredAddress": {"country": "DE"}}}})
            if code != "OK":
                raise RuntimeError("CreateMerchant: %s %s" % (code, ans))
            mid = ans["merchant"]["id"]
            code, ans = self.call(
                mport, "paywire.merchant.v1.MerchantService/CreateWebhookEndpoint",
                {"idempotencyKey": "%s-w%d" % (self.run_tag, i), "merchantId": mid,
                 "endpoint": {"url": "http://127.0.0.1:%d/hooks" % self.receiver_port}})
            if code != "OK":
                raise RuntimeError("CreateWebhookEndpoint: %s %s" % (code, ans))
            with open(self.receiver_secrets, "a") as f:
                f.write(ans["signingSecret"] + "\n")
            self.merchants.append(mid)
            if i % 4 == 3:  # a quarter call as the internal identity with their id
                continue
            code, ans = self.call(mport, "paywire.merchant.v1.MerchantService/CreateApiKey", {
                "idempotencyKey": "%s-k%d" % (self.run_tag, i), "merchantId": mid,
                "mode": "API_KEY_MODE_TEST",
                "scopes": ["payments:read", "payments:write", "refunds:write"]})
            if code != "OK":
                raise RuntimeError("CreateApiKey: %s %s" % (code, ans))
            self.api_keys[mid] = ans["secret"]
        log("%d merchants, each with a webhook endpoint at the receiver, %d calling with an API"
            " key (TEST mode)" % (len(self.merchants), len(self.api_keys)))

    # ---- load

    def count(self, kind, n=1):
        with self.stats_lock:
            self.ops[kind] += n

    def card(self, rng):
        total = sum(w for _, w in CARDS)
        x = rng.uniform(0, total)
        for number, w in CARDS:
            x -= w
            if x <= 0:
                return number
        return CARDS[0][0]

    def create(self, rng, key, merchant, amount, currency, manual, number):
        body = {"idempotencyKey": key, "merchantId": merchant,
                "amount": {"amountMinor": str(amount), "currency": currency},
                "method": {"card": {"vaultToken": "tok_" + number, "brand": "visa",
                                    "last4": number[-4:], "issuerCountry": "DE",
                                    "cardholderName": "Erika Mustermann"}},
                "captureMethod": "CAPTURE_METHOD_MANUAL" if manual else
                "CAPTURE_METHOD_AUTOMATIC", "confirm": True}
        code, ans = self.orch("CreatePayment", body, lambda a: (a["payment"]["id"],
                                                                a["payment"]["amount"]),
                              merchant)
        return body, code, ans

    def flow(self, rng, key):
        """One merchant's payment and what follows it (seeded by rng); key: its idempotency
        key, unique in the run ("<run>-w<worker>-p<n>")."""
        merchant = rng.choice(self.merchants)
        currency = rng.choice(CURRENCIES)
        amount = rng.randint(100, 50000)
        manual = rng.random() < 0.35
        number = self.card(rng)
        body, code, ans = self.create(rng, key, merchant, amount, currency, manual, number)
        self.count("create payment (manual capture)" if manual else
                   "create payment (automatic capture)")
        if code != "OK":
            self.count("create answered " + code)
            return
        pay = ans["payment"]
        with self.stats_lock:
            self.outcomes[pay["state"]] += 1
        if rng.random() < 0.3:  # the merchant's retry (a lost answer): the first payment
            self.orch("CreatePayment", body, lambda a: (a["payment"]["id"],
                                                        a["payment"]["amount"]), merchant)
            self.count("retry create, same key")
        if rng.random() < 0.08:  # a duplicate with another key: a second payment
            self.create(rng, key + "-dup", merchant, amount, currency, manual, number)
            self.count("duplicate create, another key")
        pid = pay["id"]
        state = pay["state"]
        captured = int(pay.get("amountCaptured", {}).get("amountMinor", "0") or 0)
        if state == "PAYMENT_STATE_AUTHORIZED":
            if rng.random() < 0.2:
                cbody = {"idempotencyKey": key + "-cancel", "paymentId": pid}
                code, ans = self.orch("CancelPayment", cbody, lambda a: a["payment"]["id"],
                                      merchant)
                self.count("cancel")
                if rng.random() < 0.3:
                    self.orch("CancelPayment", cbody, lambda a: a["payment"]["id"], merchant)
                    self.count("retry cancel, same key")
                return
            part = amount if rng.random() < 0.5 else rng.randint(1, amount)
            cbody = {"idempotencyKey": key + "-cap", "paymentId": pid,
                     "amount": {"amountMinor": str(part), "currency": currency}}
            code, ans = self.orch("CapturePayment", cbody, lambda a: a["payment"]["id"], merchant)
            self.count("capture (full)" if part == amount else "capture (partial)")
            if rng.random() < 0.3:
                self.orch("CapturePayment", cbody, lambda a: a["payment"]["id"], merchant)
                self.count("retry capture, same key")
            if rng.random() < 0.1:  # a second capture with another key: refused
                c2 = dict(cbody, idempotencyKey=key + "-cap2")
                self.orch("CapturePayment", c2, lambda a: a["payment"]["id"], merchant)
                self.count("second capture, another key")
            if code != "OK":
                return
            state = ans["payment"]["state"]
            captured = int(ans["payment"].get("amountCaptured", {}).get("amountMinor", "0") or 0)
        if state != "PAYMENT_STATE_SUCCEEDED" or captured <= 0:
            return
        x = rng.random()
        if x < 0.35:
            self.refunds(rng, merchant, key, pid, currency, captured, rng.randint(1, 2), False)
        elif x < 0.5:
            self.refunds(rng, merchant, key, pid, currency, captured, rng.randint(2, 4), True)

    def refunds(self, rng, merchant, key, pid, currency, captured, n, concurrent):
        if concurrent:  # together above what was captured: at least one must be refused
            lo = captured // n + 1
            amounts = [rng.randint(lo, max(lo, captured * 3 // 4)) for _ in range(n)]
        else:
            amounts = [rng.randint(1, max(1, captured * 2 // (n + 1))) for _ in range(n)]
        retry = [rng.random() < 0.3 for _ in range(n)]
        bodies = [{"idempotencyKey": "%s-r%d" % (key, i), "paymentId": pid,
                   "amount": {"amountMinor": str(amounts[i]), "currency": currency}}
                  for i in range(n)]
        if concurrent:
            self.at_once(merchant, "CreateRefund", bodies, refund_identity)
            self.count("concurrent refunds on one payment", n)
        else:
            for b in bodies:
                self.orch("CreateRefund", b, refund_identity, merchant)
            self.count("refund", n)
        for i in range(n):
            if retry[i]:
                self.orch("CreateRefund", bodies[i], refund_identity, merchant)
                self.count("retry refund, same key")

    def at_once(self, merchant, method, bodies, key_for):
        """The calls at the same moment on one HTTP/2 connection (curl, Connect's JSON: separate
        processes would spread them over their start-ups); each one that did not get an answer
        is retried on its own with the same key."""
        d = "%s/at-once-%s" % (self.work, bodies[0]["idempotencyKey"])
        os.makedirs(d, exist_ok=True)
        url = "https://localhost:%d/%s/%s" % (self.svc["orchestration"].port, ORCH, method)
        cmd = ["curl", "-sS", "--http2", "-Z", "--parallel-max", str(len(bodies)), "-m", "15"]
        for i, b in enumerate(bodies):
            if i > 0:
                cmd.append("--next")
            cmd += ["--cacert", self.work + "/certs/ca.crt", "-H",
                    "content-type: application/json", "-d", json.dumps(b), "-o",
                    "%s/%d" % (d, i), "-w", "%{http_code} %{filename_effective}\n"]
            if merchant in self.api_keys:
                cmd += ["-H", "authorization: Bearer " + self.api_keys[merchant]]
            else:
                cmd += ["--cert", self.work + "/certs/tests.crt", "--key",
                        self.work + "/certs/tests.key"]
            cmd.append(url)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        status = {}
        for line in p.stdout.splitlines():
            code, _, name = line.partition(" ")
            status[name.strip()] = code
        for i, b in enumerate(bodies):
            out = "%s/%d" % (d, i)
            ans, code = {}, "unreachable"
            try:
                with open(out) as f:
                    ans = json.load(f)
                code = "OK" if status.get(out) == "200" else str(ans.get("code", "")).upper()
            except (OSError, ValueError):
                pass
            self.count("  concurrent refund answered %s" % (
                code if code != "OK" else ans.get("refund", {}).get("state", "?")))
            if code not in ("OK", "FAILED_PRECONDITION") and code not in self.examples:
                self.examples[code] = "%s %s: %s" % (method, code, str(ans)[:300])
                log("first %s" % self.examples[code])
            if code == "OK":
                self.remember(method, b["idempotencyKey"], key_for(ans))
            elif code in TRANSIENT:
                self.orch(method, b, key_for, merchant)
        shutil.rmtree(d, ignore_errors=True)

    # ---- on-chain payments (chain-sim: the chain and the custody partner of the addresses)

    def chain_call(self, method, body, seconds=60):
        """A call to chain-sim, as the payer's wallet or the test's miner, retried with the same
        request while the answer is transient (the simulator killed or frozen), up to seconds."""
        end = time.time() + seconds
        while True:
            code, ans = self.call(self.svc["chain"].port, CHAIN + "/" + method, body,
                                  timeout_ms=3000)
            if code not in TRANSIENT or time.time() > end:
                return code, ans
            time.sleep(0.3)

    def chain_send(self, body):
        """The payer's wallet sends a transfer (a new block at once): one attempt at a time under
        chain_lock, retried outside it with the same key, so a frozen simulator does not hold the
        miner and the reorgs for long."""
        end = time.time() + 60
        while True:
            with self.chain_lock:
                code, ans = self.call(self.svc["chain"].port, CHAIN + "/SendTransfer", body,
                                      timeout_ms=3000)
            if code not in TRANSIENT or time.time() > end:
                return code, ans
            time.sleep(0.3)

    def deposit_address(self, pid, ans, merchant):
        """The payment's deposit address: in the confirm's answer, or (the custody partner was
        down at the confirm) once the watcher allocated it; None after 30 s."""
        end = time.time() + 30
        while True:
            dep = (ans.get("payment", {}).get("nextAction") or {}).get("deposit") or {}
            if dep.get("address", {}).get("address"):
                return dep["address"]["address"]
            if time.time() > end or self.stop_load.is_set():
                return None
            time.sleep(0.3)
            code, ans = self.orch("GetPayment", {"paymentId": pid}, None, merchant)

    def chain_flow(self, rng, key):
        """An on-chain USDC payment: created and confirmed (a deposit address), paid by the payer's
        wallet in full, short and topped up, or over the amount, with retries of the transfer
        with its key; the wallet then tops up whatever the chain does not include (a reorg
        dropped it) until the payment is SUCCEEDED (bounded)."""
        merchant = rng.choice(self.merchants)
        amount = rng.randint(1, 500) * 100000  # 0.1 to 50 USDC
        x = rng.random()
        plan = "exact" if x < 0.67 else "short" if x < 0.82 else "over" if x < 0.95 else \
            "from a sanctioned wallet"
        first = {"short": rng.randint(1, amount - 1),
                 "over": amount + rng.randint(1, amount // 2)}.get(plan, amount)
        wallet = "0x%040x" % rng.getrandbits(160)
        if plan == "from a sanctioned wallet":
            wallet = rng.choice(self.listed)
        retry_create, retry_send = rng.random() < 0.3, rng.random() < 0.2
        body = {"idempotencyKey": key, "merchantId": merchant,
                "amount": {"amountMinor": str(amount), "currency": TOKEN},
                "method": {"onChain": {"chain": "CHAIN_ETHEREUM", "token": TOKEN}},
                "confirm": True}
        ident = lambda a: (a["payment"]["id"], a["payment"]["amount"])  # noqa: E731
        code, ans = self.orch("CreatePayment", body, ident, merchant)
        self.count("on-chain payment (%s)" % plan)
        if code != "OK":
            self.count("on-chain create answered " + code)
            return
        pid = ans["payment"]["id"]
        if retry_create:
            self.orch("CreatePayment", body, ident, merchant)
            self.count("retry on-chain create, same key")
        address = self.deposit_address(pid, ans, merchant)
        if address is None:
            self.count("on-chain payment without an address in 30 s")
            return
        sent = [0]

        def send(value):
            tb = {"idempotencyKey": "%s-tx%d" % (key, sent[0]),
                  "fromAddress": {"chain": "CHAIN_ETHEREUM", "address": wallet},
                  "toAddress": {"chain": "CHAIN_ETHEREUM", "address": address},
                  "token": TOKEN, "amountMinor": str(value)}
            sent[0] += 1
            code, ans = self.chain_send(tb)
            if code != "OK":
                self.count("transfer answered " + code)
            if retry_send and sent[0] == 1:
                self.chain_send(tb)
                self.count("retry transfer, same key")

        send(first)
        end = time.time() + 40
        while time.time() < end and not self.stop_load.is_set():
            time.sleep(0.5)
            code, ans = self.orch("GetPayment", {"paymentId": pid}, None, merchant)
            state = ans.get("payment", {}).get("state", "") if code == "OK" else ""
            if state in ("PAYMENT_STATE_SUCCEEDED", "PAYMENT_STATE_FAILED"):
                self.count("on-chain payment %s while its flow waited" % state[14:])
                return
            code, ans = self.chain_call("GetDepositAddress", {"address": address}, 10)
            if code != "OK":
                continue
            included = sum(int(t["amountMinor"]) for t in ans.get("transfers", [])
                           if int(t.get("blockNumber", "0")) > 0)
            if included < amount:
                send(amount - included)
                self.count("transfer topping up (short, or dropped by a reorg)")

    def miner(self):
        """The chain's blocks: one every 0.25 s from the load's start until the drain ended, so
        that every deposit reaches its confirmations."""
        while not self.stop_miner.wait(0.25):
            with self.chain_lock:
                code, _ = self.call(self.svc["chain"].port, CHAIN + "/MineBlocks", {"count": 1},
                                    timeout_ms=2000)
            if code == "OK":
                self.count("blocks mined")

    def reorg(self, rng):
        """A reorg from a block at most REORG_DEPTH deep (its transfer and every later one
        dropped), chosen and made under chain_lock: never a deposit that could be final. Waits
        up to 5 s for a transfer that recent."""
        end = time.time() + 5
        while True:
            with self.chain_lock:
                rows = self.cluster.sql("chain", "SELECT t.transaction_hash FROM transfers t,"
                                                 " head h WHERE t.block IS NOT NULL AND h.height"
                                                 " - t.block + 1 <= %d ORDER BY t.seq" %
                                        REORG_DEPTH)
                if rows:
                    code, ans = self.call(self.svc["chain"].port, CHAIN + "/Reorg",
                                          {"transactionHash": rng.choice(rows)[0],
                                           "maxDepth": REORG_DEPTH},
                                          timeout_ms=5000)
                    break
            if time.time() > end or self.stop_faults.is_set():
                self.count("reorg with no recent transfer to drop")
                return
            time.sleep(0.2)
        if code == "OK":
            self.count("transfers dropped by reorgs", len(ans.get("dropped", [])))
        else:
            self.count("reorg answered " + code)

    def worker(self, index):
        rng = random.Random("%d-worker-%d" % (self.seed, index))
        n = 0
        flows = [(self.flow, 100), (self.chain_flow, 12)]  # (flow, weight)
        total = sum(w for _, w in flows)
        while not self.stop_load.is_set():
            x = rng.uniform(0, total)
            pick = next((f for f, w in flows if w > 0 and (x := x - w) <= 0), self.flow)
            pick(rng, "%s-w%d-p%d" % (self.run_tag, index, n))
            n += 1

    # ---- faults

    def faults_loop(self):
        rng = random.Random("%d-faults" % self.seed)
        kinds = [("SIGKILL orchestration", 4), ("SIGKILL finance", 3), ("SIGKILL merchant", 2),
                 ("SIGKILL compliance", 2), ("SIGKILL acquirer", 2),
                 ("PostgreSQL restart -m immediate", 3), ("acquirer hangs (SIGSTOP)", 2),
                 ("acquirer fails and hangs (failure/hang knobs)", 2),
                 ("webhooks answered 500", 2), ("webhooks answered slowly", 2),
                 ("SIGKILL webhook receiver", 2), ("webhook receiver hangs (SIGSTOP)", 1),
                 ("SIGKILL chain", 2), ("chain-sim hangs (SIGSTOP)", 1),
                 ("chain reorg (blocks not yet final dropped)", 3)]
        total = sum(w for _, w in kinds)
        # Every kind once first (in a seeded order), so a short run still has each; then drawn.
        first = [k for k, _ in kinds]
        rng.shuffle(first)
        time.sleep(rng.uniform(1, 3))
        while not self.stop_faults.is_set():
            if first:
                kind = first.pop()
            else:
                x = rng.uniform(0, total)
                for kind, w in kinds:
                    x -= w
                    if x <= 0:
                        break
            self.inject(rng, kind)
            self.faults[kind] += 1
            self.stop_faults.wait(rng.uniform(0.5, 3))

    def inject(self, rng, kind):
        sim = "acquirer" if rng.random() < 0.6 else "acquirer2"
        hold = rng.uniform(0.3, 3)
        if kind == "SIGKILL webhook receiver":
            self.receiver.kill()
            self.receiver.wait()
            time.sleep(hold)
            self.start_receiver(again=True)
        elif kind.startswith("webhook receiver hangs"):
            self.receiver.send_signal(signal.SIGSTOP)
            time.sleep(hold)
            self.receiver.send_signal(signal.SIGCONT)
        elif kind.startswith("chain-sim hangs"):
            self.svc["chain"].signal(signal.SIGSTOP)
            time.sleep(hold)
            self.svc["chain"].signal(signal.SIGCONT)
        elif kind.startswith("chain reorg"):
            self.reorg(rng)
        elif kind.startswith("SIGKILL"):
            name = kind.split()[1]
            name = sim if name == "acquirer" else name
            self.svc[name].kill()
            time.sleep(hold)
            self.restart(name)
        elif kind.startswith("PostgreSQL"):
            self.cluster.restart("immediate")
        elif kind.startswith("acquirer hangs"):
            self.svc[sim].signal(signal.SIGSTOP)
            time.sleep(hold)
            self.svc[sim].signal(signal.SIGCONT)
        elif kind.startswith("acquirer fails"):
            self.svc[sim].kill()
            self.restart(sim, "failure_percent = 30\nhang_percent = 10\n")
            time.sleep(rng.uniform(3, 8))
            self.svc[sim].kill()
            self.restart(sim)
        elif kind.startswith("webhooks"):
            with open(self.receiver_control, "w") as f:
                f.write("fail" if "500" in kind else "slow 2000")
            time.sleep(rng.uniform(2, 6))
            with open(self.receiver_control, "w") as f:
                f.write("")

    def restart(self, name, extra=""):
        for i in range(5):
            try:
                self.svc[name].start(extra)
                return
            except RuntimeError as e:  # e.g. PostgreSQL was restarting at its start
                log("restart %s: %s (again)" % (name, e))
                self.svc[name].kill()
                time.sleep(1)
        raise RuntimeError("%s does not start again" % name)

    # ---- drain and checks

    def drain(self):
        for name in self.order:
            s = self.svc[name]
            if s.proc is None or s.proc.poll() is not None:
                self.restart(name)
            s.signal(signal.SIGCONT)
        self.receiver.send_signal(signal.SIGCONT)
        if not self.receiver_alive():
            self.start_receiver(again=True)
        open(self.receiver_control, "w").close()
        waits = [
            ("orchestration", "SELECT count(*) FROM payment_attempts WHERE outcome IN"
                              " ('PENDING', 'TIMED_OUT') AND kind = 'authorization'"),
            ("orchestration", "SELECT count(*) FROM payment_operations WHERE state = 'PENDING'"),
            ("orchestration", "SELECT count(*) FROM refunds WHERE state = 'PENDING'"),
            ("orchestration", "SELECT count(*) FROM payments WHERE state = 'PROCESSING'"),
            ("orchestration", "SELECT count(*) FROM payments WHERE method = 'on_chain' AND state"
                              " = 'REQUIRES_CONFIRMATION'"),
            # (a FAILED payment's deposits are no longer watched: holds are not built yet)
            ("orchestration", "SELECT count(*) FROM deposits d JOIN payments p ON p.id ="
                              " d.payment_id WHERE d.state = 'SEEN' AND p.state <> 'FAILED'"),
            ("orchestration", "SELECT count(*) FROM outbox WHERE published_time IS NULL AND"
                              " dead_time IS NULL"),
            ("orchestration", "SELECT count(*) FROM webhook_events WHERE published_time IS NULL"
                              " AND dead_time IS NULL"),
            ("orchestration", "SELECT count(*) FROM webhook_deliveries WHERE published_time IS"
                              " NULL AND dead_time IS NULL"),
            ("merchant", "SELECT count(*) FROM audit_outbox WHERE published_time IS NULL AND"
                         " dead_time IS NULL"),
            ("finance", "SELECT count(*) FROM audit_outbox WHERE published_time IS NULL AND"
                        " dead_time IS NULL"),
        ]
        end = time.time() + 120
        start = shown = time.time()
        while True:
            left = [(db, q, self.cluster.scalar(db, q)) for db, q in waits]
            left = [x for x in left if x[2] != 0]
            if not left:
                self.check("the system drains (in %.1f s)" % (time.time() - start), [])
                return
            if time.time() > shown + 10:
                shown = time.time()
                log("draining: " + "; ".join("%s = %d" % (q[q.index("FROM"):][:60], n)
                                             for _, q, n in left))
            if time.time() > end:
                raise Violation("the system did not drain in 120 s: " + "; ".join(
                    "%s: %s = %d" % x for x in left))
            time.sleep(0.5)

    def check(self, name, problems):
        """A check: problems is a list of what is wrong (empty: passed). Every check runs; the
        first violation prints the seed."""
        if problems:
            self.failed.append(name)
            log("VIOLATION%s: %s: %d problem(s), e.g.\n    %s" % (
                " (seed %d; replay with FAULT_SEED=%d FAULT_SECONDS=%g)" % (
                    self.seed, self.seed, self.seconds) if len(self.failed) == 1 else "",
                name, len(problems), "\n    ".join(problems[:8])))
            return
        self.passed.append(name)
        log("check passed: " + name)

    def rows(self, db, q):
        return ["\t".join(r) for r in self.cluster.sql(db, q)]

    def checks(self):
        fin, orch = "finance", "orchestration"
        self.check("idempotent retries got the first answer", self.idem_violations)
        # ---- the ledger
        self.check("ledger: debits = credits per mode and currency, posted and pending",
                   self.rows(fin, "SELECT mode, currency, sum(posted_debits), sum(posted_credits),"
                                  " sum(pending_debits), sum(pending_credits) FROM accounts"
                                  " GROUP BY 1, 2 HAVING sum(posted_debits) <> sum(posted_credits)"
                                  " OR sum(pending_debits) <> sum(pending_credits)"))
        self.check("ledger: stored balances = their recomputation from the entries", self.rows(
            fin, "SELECT a.id, a.posted_debits, a.posted_credits, a.pending_debits,"
                 " a.pending_credits, e.pd, e.pc, e.qd, e.qc FROM accounts a LEFT JOIN (SELECT"
                 " account_id, sum(amount_minor) FILTER (WHERE side = 'DEBIT' AND phase <>"
                 " 'PENDING' AND phase <> 'VOID') pd, sum(amount_minor) FILTER (WHERE side ="
                 " 'CREDIT' AND phase <> 'PENDING' AND phase <> 'VOID') pc, coalesce(sum("
                 "amount_minor) FILTER (WHERE side = 'DEBIT' AND phase = 'PENDING'), 0) -"
                 " coalesce(sum(amount_minor) FILTER (WHERE side = 'DEBIT' AND phase IN ('POST',"
                 " 'VOID')), 0) qd, coalesce(sum(amount_minor) FILTER (WHERE side = 'CREDIT' AND"
                 " phase = 'PENDING'), 0) - coalesce(sum(amount_minor) FILTER (WHERE side ="
                 " 'CREDIT' AND phase IN ('POST', 'VOID')), 0) qc FROM entries GROUP BY 1) e ON"
                 " e.account_id = a.id WHERE a.posted_debits <> coalesce(e.pd, 0) OR"
                 " a.posted_credits <> coalesce(e.pc, 0) OR a.pending_debits <> coalesce(e.qd, 0)"
                 " OR a.pending_credits <> coalesce(e.qc, 0)"))
        code, ans = self.call(self.svc["finance"].port, "paywire.finance.v1.LedgerService/"
                              "CheckLedger", {}, timeout_ms=60000)
        self.check("ledger: finance's CheckLedger finds no difference",
                   ["CheckLedger: %s %s" % (code, ans)] if code != "OK" else
                   ["%s: %s" % (d["subject"], d["detail"]) for d in ans.get("differences", [])])
        self.check("ledger: no merchant's funds (pending + available + reserved, less pending"
                   " debits) below zero, no receivable or revenue below zero", self.rows(
                       fin, "SELECT mode, owner, currency, sum(posted_credits - posted_debits -"
                            " pending_debits) FROM accounts WHERE kind IN ('merchant_pending',"
                            " 'merchant_available', 'merchant_reserved') GROUP BY 1, 2, 3 HAVING"
                            " sum(posted_credits - posted_debits - pending_debits) < 0 UNION ALL"
                            " SELECT mode, kind || ' ' || owner, currency, posted_debits -"
                            " posted_credits FROM accounts WHERE kind = 'partner_receivable' AND"
                            " posted_debits < posted_credits UNION ALL SELECT mode, kind,"
                            " currency, posted_credits - posted_debits FROM accounts WHERE kind ="
                            " 'platform_revenue' AND posted_credits < posted_debits"))
        # ---- payments against the ledger
        caps = {r[0]: r[1:] for r in self.cluster.sql(
            orch, "SELECT o.id, o.amount_minor, p.currency, p.id, p.amount_captured_minor,"
                  " p.method FROM payment_operations o JOIN payments p ON p.id = o.payment_id WHERE o.kind ="
                  " 'CAPTURE' AND o.state = 'SUCCEEDED'")}
        txf = collections.defaultdict(list)
        for r in self.cluster.sql(fin, "SELECT t.id, t.state, a.kind, e.side, e.amount_minor,"
                                       " e.currency, e.phase FROM transfers t JOIN entries e ON"
                                       " e.mode = t.mode AND e.transfer_id = t.id JOIN accounts"
                                       " a ON a.id = e.account_id WHERE t.kind IN ('capture',"
                                       " 'refund')"):
            txf[r[0]].append(r[1:])
        problems = []
        for op, (amount, currency, pid, pcaptured, method) in caps.items():
            es = txf.get("txf_capture_" + op)
            if es is None:
                problems.append("capture %s of %s (%s %s): no transfer" % (op, pid, amount,
                                                                            currency))
                continue
            amount = int(amount)
            bps, fixed = FEES[method]
            fee = fixed + half_even(amount * bps, 10000)
            want = sorted([("POSTED", "partner_receivable", "DEBIT", str(amount), currency,
                            "POSTED"),
                           ("POSTED", "merchant_pending", "CREDIT", str(amount), currency,
                            "POSTED")] +
                          ([("POSTED", "merchant_pending", "DEBIT", str(fee), currency, "POSTED"),
                            ("POSTED", "platform_revenue", "CREDIT", str(fee), currency,
                             "POSTED")] if 0 < fee < amount else []))
            got = sorted(tuple(e) for e in es)
            if got != want:
                problems.append("capture %s of %s: entries %s, want %s" % (op, pid, got, want))
            if int(pcaptured) != amount:
                problems.append("payment %s: captured %s, its capture %d" % (pid, pcaptured,
                                                                            amount))
        for t in txf:
            if t.startswith("txf_capture_") and t[len("txf_capture_"):] not in caps:
                problems.append("%s: a capture transfer without a succeeded capture" % t)
        self.check("every succeeded capture posted exactly once with its fee once, nothing"
                   " else posted as a capture", problems)
        problems = []
        refs = {r[0]: r[1:] for r in self.cluster.sql(
            orch, "SELECT id, state, amount_minor, currency, payment_id FROM refunds")}
        for rid, (state, amount, currency, pid) in refs.items():
            es = txf.get("txf_refund_" + rid)
            if state == "SUCCEEDED":
                want = sorted([("POSTED", "merchant_available", "DEBIT", amount, currency, p)
                               for p in ("PENDING", "POST")] +
                              [("POSTED", "partner_receivable", "CREDIT", amount, currency, p)
                               for p in ("PENDING", "POST")])
                got = sorted(tuple(e) for e in es or [])
                if got != want:
                    problems.append("refund %s of %s (%s %s): entries %s, want %s" % (
                        rid, pid, amount, currency, got, want))
            elif es is not None and any(e[0] != "VOIDED" for e in es):
                problems.append("refund %s %s: its transfer is %s" % (rid, state, es[0][0]))
        for t in txf:
            if t.startswith("txf_refund_") and t[len("txf_refund_"):] not in refs:
                problems.append("%s: a refund transfer without a refund" % t)
        self.check("every succeeded refund posted exactly once, every failed one voided or"
                   " never booked", problems)
        self.check("refunds <= captures per payment; the payment's counters are its operations'",
                   self.rows(orch, "SELECT p.id, p.amount_minor, p.amount_captured_minor,"
                                   " p.amount_refunded_minor, coalesce(c.s, 0), coalesce(r.s, 0)"
                                   " FROM payments p LEFT JOIN (SELECT payment_id, sum("
                                   "amount_minor) s FROM payment_operations WHERE kind = 'CAPTURE'"
                                   " AND state = 'SUCCEEDED' GROUP BY 1) c ON c.payment_id = p.id"
                                   " LEFT JOIN (SELECT payment_id, sum(amount_minor) s FROM refunds"
                                   " WHERE state = 'SUCCEEDED' GROUP BY 1) r ON r.payment_id ="
                                   " p.id WHERE p.amount_refunded_minor > p.amount_captured_minor"
                                   " OR p.amount_captured_minor > p.amount_minor OR"
                                   " p.amount_captured_minor <> coalesce(c.s, 0) OR"
                                   " p.amount_refunded_minor <> coalesce(r.s, 0) OR (p.state ="
                                   " 'SUCCEEDED') <> (p.amount_captured_minor > 0)"))
        self.check("no payment captured twice (ours and at the acquirers)",
                   self.rows(orch, "SELECT payment_id, count(*) FROM payment_operations WHERE"
                                   " kind = 'CAPTURE' AND state = 'SUCCEEDED' GROUP BY 1 HAVING"
                                   " count(*) > 1") +
                   sum([self.rows(s, "SELECT '%s', authorization_reference, count(*),"
                                     " sum(amount_minor) FROM operations WHERE kind = 'CAPTURE'"
                                     " AND status = 'APPROVED' GROUP BY 2 HAVING count(*) > 1"
                                     % s) for s in ("acquirer", "acquirer2")], []))
        self.check("nothing reached an acquirer that it had to refuse for its amount or state"
                   " (a refund above what is left, a second capture, a capture of a voided"
                   " authorization)",
                   sum([self.rows(s, "SELECT '%s', kind, key, decline_code, amount_minor,"
                                     " authorization_reference FROM operations WHERE kind <>"
                                     " 'AUTHORIZATION' AND status = 'DECLINED'" % s)
                        for s in ("acquirer", "acquirer2")], []))
        self.check_acquirers()
        self.check_webhooks()
        self.check_audit()
        self.check_chain()

    def check_acquirers(self):
        """The simulators' own records against ours, by the idempotency key we sent them."""
        ours = set()
        for conn, sim in (("acquirer_sim", "acquirer"), ("acquirer_sim2", "acquirer2")):
            for r in self.cluster.sql("orchestration", (
                    "SELECT 'AUTHORIZATION', id, partner_reference, (SELECT amount_minor FROM"
                    " payments p WHERE p.id = a.payment_id) FROM payment_attempts a WHERE"
                    " connector = '%s' AND outcome = 'SUCCEEDED'" % conn)):
                ours.add((sim,) + tuple(r))
            for r in self.cluster.sql("orchestration", (
                    "SELECT o.kind, o.id, o.partner_reference, o.amount_minor FROM"
                    " payment_operations o JOIN payment_attempts a ON a.payment_id ="
                    " o.payment_id AND a.outcome = 'SUCCEEDED' WHERE a.connector = '%s' AND"
                    " o.state = 'SUCCEEDED' UNION ALL SELECT 'REFUND', f.id, f.partner_reference,"
                    " f.amount_minor FROM refunds f JOIN payment_attempts a ON a.payment_id ="
                    " f.payment_id AND a.outcome = 'SUCCEEDED' WHERE a.connector = '%s' AND"
                    " f.state = 'SUCCEEDED'" % (conn, conn))):
                ours.add((sim,) + tuple(r))
        theirs = set()
        for sim in ("acquirer", "acquirer2"):
            for r in self.cluster.sql(sim, "SELECT kind, key, reference, amount_minor FROM"
                                           " operations WHERE status = 'APPROVED'"):
                theirs.add((sim,) + tuple(r))
        problems = ["the acquirer has %s, we do not" % (x,) for x in sorted(theirs - ours)]
        problems += ["we booked %s, the acquirer has not" % (x,) for x in sorted(ours - theirs)]
        self.ops["acquirer records compared"] = len(theirs)
        self.check("the acquirers' approved operations are exactly ours (key, reference, amount)",
                   problems)

    def check_webhooks(self):
        accepted = collections.Counter()
        bad = []
        lines = collections.Counter()
        with open(self.receiver_log) as f:
            for line in f:
                parts = line.split()
                lines[parts[0]] += 1
                if parts[0] == "ok":
                    accepted[parts[1]] += 1
                elif parts[0] == "bad":
                    bad.append(line.strip())
        events = set(r[0] for r in self.cluster.sql(
            "orchestration", "SELECT event_id FROM webhook_events WHERE merchant_id IN (%s)" %
            ",".join("'%s'" % m for m in self.merchants)))
        problems = ["refused: " + b for b in bad]
        problems += ["%s never accepted by the receiver" % e for e in sorted(events - set(
            accepted))]
        problems += ["%s accepted but not an event of ours" % e for e in sorted(set(accepted) -
                                                                                events)]
        problems += ["%s accepted %d times" % (e, n) for e, n in accepted.items() if n != 1]
        problems += self.rows("orchestration", "SELECT 'dead delivery', event_id, last_error FROM"
                                               " webhook_deliveries WHERE dead_time IS NOT NULL"
                                               " UNION ALL SELECT 'dead outbox event', event_id,"
                                               " last_error FROM outbox WHERE dead_time IS NOT"
                                               " NULL")
        self.ops["webhook events delivered"] = len(accepted)
        self.ops["webhook repeats (dup)"] = lines["dup"]
        self.ops["webhook refusals while failing/slow (busy)"] = lines["busy"]
        self.check("every event delivered to the webhook receiver exactly once after de-dup by"
                   " event id, no delivery or ledger event dead", problems)

    def check_audit(self):
        code, ans = self.call(self.svc["compliance"].port,
                              "paywire.compliance.v1.AuditService/VerifyChain", {},
                              timeout_ms=60000)
        problems = []
        if code != "OK":
            problems.append("VerifyChain: %s %s" % (code, ans))
        elif not ans.get("intact") or int(ans.get("eventsChecked", "0")) == 0:
            problems.append("VerifyChain: %s" % ans)
        else:
            self.ops["audit events verified"] = int(ans["eventsChecked"])
        problems += self.rows("merchant", "SELECT 'merchant audit event dead', id FROM"
                                          " audit_outbox WHERE dead_time IS NOT NULL")
        problems += self.rows("finance", "SELECT 'finance audit event dead', id FROM audit_outbox"
                                         " WHERE dead_time IS NOT NULL")
        self.check("the audit chain verifies end to end, no audit event dead", problems)
        # Every event merchant and finance wrote to their audit outboxes is in the chain, once
        # (compliance keys each by its reporter and "<source>/audit/<outbox id>").
        chain = collections.Counter()
        for reporter, key in self.cluster.sql("compliance", "SELECT reporter, event_key FROM"
                                                            " audit_events"):
            chain[(reporter.rsplit("/", 1)[-1], key.rsplit("/", 1)[-1])] += 1
        problems = []
        for svc in ("merchant", "finance"):
            ids = set(r[0] for r in self.cluster.sql(svc, "SELECT id FROM audit_outbox"))
            have = set(i for (rep, i) in chain if rep == svc)
            problems += ["%s audit event %s is not in the chain" % (svc, i)
                         for i in sorted(ids - have)]
            problems += ["the chain has %s audit event %s, %s has not" % (svc, i, svc)
                         for i in sorted(have - ids)]
        problems += ["%s audit event %s is in the chain %d times" % (k[0], k[1], n)
                     for k, n in chain.items() if n > 1]
        self.check("every audit event of merchant and finance is in the chain exactly once",
                   problems)

    def check_chain(self):
        """On-chain payments against chain-sim's own records and the ledger."""
        orch = "orchestration"
        pays = {r[0]: r[1:] for r in self.cluster.sql(
            orch, "SELECT p.id, p.state, p.amount_minor, p.amount_captured_minor,"
                  " p.deposit_address, coalesce(sum(a.amount_received_minor), 0) FROM payments p"
                  " LEFT JOIN payment_attempts a ON a.payment_id = p.id AND a.kind = 'deposit'"
                  " WHERE p.method = 'on_chain' GROUP BY p.id")}
        self.ops["on-chain payments checked"] = len(pays)
        attempts = {r[0]: r[1] for r in self.cluster.sql(
            orch, "SELECT id, payment_id FROM payment_attempts WHERE kind = 'deposit'")}
        theirs_addr = {r[1]: r[0] for r in self.cluster.sql("chain",
                                                            "SELECT key, address FROM addresses")}
        problems = ["on-chain payment %s (%s) has no deposit address" % (p, v[0])
                    for p, v in pays.items() if v[3] == ""]
        for address, k in theirs_addr.items():
            pid = attempts.get(k)
            if pid is None:
                problems.append("chain-sim address %s for key %s: no deposit attempt of ours" % (
                    address, k))
            elif pays[pid][3] != address:
                problems.append("payment %s: address %s, chain-sim allocated %s for its attempt"
                                % (pid, pays[pid][3], address))
        problems += ["payment %s: address %s unknown to chain-sim" % (p, v[3])
                     for p, v in pays.items() if v[3] and v[3] not in theirs_addr]
        self.check("every on-chain payment has the address chain-sim allocated for its attempt",
                   problems)
        ours, whose = {}, {}
        for pid, h, li, frm, amount, state in self.cluster.sql(
                orch, "SELECT payment_id, transaction_hash, log_index, from_address, amount_minor,"
                      " state FROM deposits"):
            if state == "SEEN" and pays.get(pid, ("",))[0] == "FAILED":
                # No longer watched once FAILED (holds are not built yet): what it was when the
                # payment failed, whatever the chain did since (final, or dropped by a reorg).
                state = "UNWATCHED"
            ours[(h, li, frm, amount, pays[pid][3] if pid in pays else "?")] = state
            whose[h] = "%s %s" % (pid, pays.get(pid, ("?",))[0])
        theirs = {}
        for h, li, frm, to, amount, included in self.cluster.sql(
                "chain", "SELECT transaction_hash, log_index, from_address, to_address,"
                         " amount_minor, block IS NOT NULL FROM transfers"):
            theirs[(h, li, frm, amount, to)] = included == "t"
        problems = []
        for k, included in sorted(theirs.items()):
            state = ours.get(k)
            if k[4] not in theirs_addr:
                problems.append("transfer %s to %s: not a deposit address" % (k[0], k[4]))
            elif included and state not in ("FINAL", "UNWATCHED"):
                problems.append("transfer %s (%s to %s) on the chain: our deposit is %s (%s)" % (
                    k[0], k[3], k[4], state or "missing", whose.get(k[0], "no payment")))
            elif not included and state not in (None, "REORGED", "UNWATCHED"):
                problems.append("transfer %s dropped by a reorg: our deposit is %s (payment %s)"
                                % (k[0], state, whose.get(k[0], "?")))
        problems += ["deposit %s (%s to %s, %s): not a transfer on the chain" % (
            k[0], k[3], k[4], st) for k, st in sorted(ours.items()) if k not in theirs]
        self.ops["chain transfers compared"] = len(theirs)
        self.ops["  of them dropped by a reorg"] = sum(1 for v in theirs.values() if not v)
        self.check("chain-sim's transfers to our addresses are exactly our deposits (hash, log"
                   " index, wallet, amount), final, or REORGED when a reorg dropped them",
                   problems)
        final, listed = collections.Counter(), set()
        for pid, amount, state, wallet in self.cluster.sql(
                orch, "SELECT payment_id, amount_minor, state, from_address FROM deposits WHERE"
                      " state <> 'REORGED'"):
            final[pid] += int(amount) if state == "FINAL" else 0
            if wallet in self.listed:
                listed.add(pid)
        problems = []
        for pid, (state, amount, captured, _, received) in pays.items():
            amount, captured, received = int(amount), int(captured), int(received)
            want = "FAILED" if pid in listed else "SUCCEEDED" if final[pid] >= amount else \
                "REQUIRES_ACTION"
            if state != want:
                problems.append("payment %s %s, want %s: %d of %d final on the chain%s" % (
                    pid, state, want, final[pid], amount,
                    ", from a sanctioned wallet" if pid in listed else ""))
            if captured != (amount if state == "SUCCEEDED" else 0):
                problems.append("payment %s %s: captured %d of %d" % (pid, state, captured,
                                                                      amount))
            if want != "FAILED" and received != final[pid]:
                problems.append("payment %s: received %d, its final deposits %d" % (
                    pid, received, final[pid]))
        self.ops["on-chain payments FAILED (a sanctioned wallet)"] = sum(
            1 for v in pays.values() if v[0] == "FAILED")
        self.check("every on-chain payment SUCCEEDED exactly when its final deposits reach its"
                   " amount (captured in full then, received = its final deposits), FAILED when"
                   " a sanctioned wallet paid it, REQUIRES_ACTION otherwise", problems)
        caps = collections.defaultdict(list)
        for pid, op, amount, ref in self.cluster.sql(
                orch, "SELECT o.payment_id, o.id, o.amount_minor, o.partner_reference FROM"
                      " payment_operations o JOIN payments p ON p.id = o.payment_id WHERE"
                      " p.method = 'on_chain' AND o.kind = 'CAPTURE' AND o.state = 'SUCCEEDED'"):
            caps[pid].append((op, int(amount), ref))
        hashes = collections.defaultdict(set)
        for pid, h in self.cluster.sql(orch, "SELECT payment_id, transaction_hash FROM deposits"
                                             " WHERE state = 'FINAL'"):
            hashes[pid].add(h)
        booked = collections.defaultdict(list)
        for tid, state, owner, amount in self.cluster.sql(
                "finance", "SELECT t.id, t.state, a.owner, e.amount_minor FROM transfers t JOIN"
                           " entries e ON e.mode = t.mode AND e.transfer_id = t.id JOIN accounts"
                           " a ON a.id = e.account_id WHERE t.kind = 'capture' AND a.kind ="
                           " 'partner_receivable' AND e.side = 'DEBIT'"):
            booked[tid].append((state, owner, int(amount)))
        problems = []
        for pid, (state, amount, _, _, _) in pays.items():
            got = caps.get(pid, [])
            if state != "SUCCEEDED":
                problems += ["payment %s %s has capture %s" % (pid, state, c[0]) for c in got]
                continue
            if len(got) != 1:
                problems.append("payment %s SUCCEEDED with %d captures" % (pid, len(got)))
                continue
            op, camount, ref = got[0]
            if camount != int(amount) or ref not in hashes[pid]:
                problems.append("payment %s: capture %s of %d (%s), want %s from one of its final"
                                " deposits" % (pid, op, camount, ref, amount))
            if booked.get("txf_capture_" + op) != [("POSTED", "chain_sim", int(amount))]:
                problems.append("payment %s: capture %s booked as %s, want once %s from"
                                " partner_receivable(chain_sim), posted" % (
                                    pid, op, booked.get("txf_capture_" + op), amount))
        self.ops["on-chain payments SUCCEEDED"] = sum(1 for v in pays.values()
                                                      if v[0] == "SUCCEEDED")
        self.check("every SUCCEEDED on-chain payment posted exactly once in the ledger (its"
                   " amount from partner_receivable(chain_sim), the deposit's hash as reference),"
                   " nothing booked for the others", problems)

    # ---- the run

    def run(self):
        log("seed %d, %g s of load, %d workers, %d merchants (replay: FAULT_SEED=%d "
            "FAULT_SECONDS=%g)" % (self.seed, self.seconds, self.workers, self.n_merchants,
                                   self.seed, self.seconds))
        if not self.lock():
            log("another fault test held %s for too long; nothing was run" % self.lock_path)
            return 2
        if hasattr(self, "lock_waited"):
            log("waited %.0f s for the other fault test" % (time.time() - self.lock_waited))
        t0 = time.time()
        try:
            self.setup()
        except Exception as e:  # noqa: BLE001
            log("setup failed: %s" % e)
            self.teardown(keep=True)
            return 2
        log("stack up in %.1f s (PostgreSQL on %d, services from %d)" % (
            time.time() - t0, self.cluster.port, self.base))
        threads = [threading.Thread(target=self.worker, args=(i,)) for i in range(self.workers)]
        injector = threading.Thread(target=self.faults_loop)
        miner = threading.Thread(target=self.miner)
        miner.start()
        for t in threads:
            t.start()
        injector.start()
        time.sleep(self.seconds)
        self.stop_faults.set()
        injector.join()
        self.stop_load.set()
        for t in threads:
            t.join()
        log("load stopped after %.1f s" % (time.time() - t0))
        try:
            self.drain()
        except Violation as v:  # the checks still run: they say what the stuck work means
            self.check("the system drains", [str(v)])
        self.stop_miner.set()
        miner.join()
        try:
            self.checks()
        except Exception as e:  # noqa: BLE001 (a check that could not run is a failure)
            self.check("the checks run", ["%s: %s" % (type(e).__name__, e)])
        rc = 1 if self.failed else 0
        self.figures()
        self.teardown(keep=rc != 0 or os.environ.get("FAULT_KEEP") == "1")
        log("%s in %.1f s (seed %d)" % ("ok" if rc == 0 else "FAILED", time.time() - t0,
                                         self.seed))
        return rc

    def figures(self):
        log("operations:")
        for k, v in sorted(self.ops.items()):
            log("  %6d  %s" % (v, k))
        log("payments after their first answer: " + ", ".join(
            "%s %d" % (k.replace("PAYMENT_STATE_", ""), v) for k, v in sorted(
                self.outcomes.items())))
        log("faults injected (%d):" % sum(self.faults.values()))
        for k, v in sorted(self.faults.items()):
            log("  %6d  %s" % (v, k))
        log("checks passed: %d of %d%s" % (len(self.passed), len(self.passed) + len(self.failed),
                                           "; failed: " + "; ".join(self.failed)
                                           if self.failed else ""))

    def teardown(self, keep):
        if hasattr(self, "svc"):
            for name in reversed(getattr(self, "order", [])):
                self.svc[name].stop()
        if hasattr(self, "receiver"):
            self.receiver.send_signal(signal.SIGCONT)
            self.receiver.terminate()
            self.receiver.wait()
        self.cluster.stop()
        if keep:
            log("logs kept in %s" % self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)
            shutil.rmtree(self.cluster.folder, ignore_errors=True)


def refund_identity(answer):
    """What every answer to one CreateRefund key must repeat."""
    r = answer["refund"]
    return r["id"], r["amount"]["amountMinor"], r["amount"]["currency"]


def half_even(num, den):
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2 == 1):
        q += 1
    return q


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--source", default=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    sys.exit(FaultTest(p.parse_args()).run())


if __name__ == "__main__":
    main()

# The paywire services' fixed facts, shared by every environment: ports (as in
# scripts/stack), the health service name, the secrets beyond the common ones
# (database URLs, TLS). Adding a service: one entry here, then its sizes in
# each environment (docs/deploy.md).

terraform {
  required_version = ">= 1.6"
}

output "services" {
  value = {
    merchant = {
      port           = 15061
      admin_port     = 15161
      health_service = "paywire.merchant.v1.MerchantService"
      secrets        = ["encryption_key"]
    }
    orchestration = {
      port           = 15062
      admin_port     = 15162
      health_service = "paywire.orchestration.v1.PaymentService"
      secrets        = []
    }
    finance = {
      port           = 15063
      admin_port     = 15163
      health_service = "paywire.finance.v1.LedgerService"
      secrets        = []
    }
    compliance = {
      port           = 15064
      admin_port     = 15164
      health_service = "paywire.compliance.v1.ScreeningService"
      secrets        = ["encryption_key"]
    }
  }
}

output "internal_identities" {
  description = "SPIFFE ids of the internal callers."
  value = [
    "spiffe://paywire/operator",
    "spiffe://paywire/merchant",
    "spiffe://paywire/orchestration",
    "spiffe://paywire/compliance",
    "spiffe://paywire/finance",
  ]
}

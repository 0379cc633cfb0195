# The secrets every service task reads, one Secrets Manager secret per value,
# encrypted with this module's KMS key:
#   <name>/<service>/database_url          libpq URL as <service>_app
#   <name>/<service>/migrate_database_url  libpq URL as <service>_owner (the migration task)
#   <name>/<service>/tls_cert, tls_key     the service's certificate and key (PEM)
#   <name>/<service>/tls_ca                the internal CA (PEM)
#   <name>/<service>/<extra>               e.g. merchant's encryption_key
# Terraform makes the secrets but never their values: the values are put with
# `aws secretsmanager put-secret-value` (docs/deploy.md), so no secret is in
# the state or in a task definition, which holds only the secret's ARN.

variable "name" {
  type = string
}

variable "services" {
  description = "Service name => the service's own secrets beyond the common ones."
  type        = map(list(string))
}

variable "recovery_window_days" {
  description = "Days a deleted secret can still be restored (0: at once)."
  type        = number
  default     = 30
}

variable "tags" {
  type    = map(string)
  default = {}
}

locals {
  common = ["database_url", "migrate_database_url", "tls_cert", "tls_key", "tls_ca"]
  secrets = merge([
    for svc, extra in var.services : {
      for key in concat(local.common, extra) : "${svc}/${key}" => { service = svc, key = key }
    }
  ]...)
}

resource "aws_kms_key" "secrets" {
  description         = "${var.name} service secrets"
  enable_key_rotation = true
  tags                = var.tags
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.name}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

resource "aws_secretsmanager_secret" "this" {
  for_each                = local.secrets
  name                    = "${var.name}/${each.key}"
  description             = "${each.value.service}: ${each.value.key}"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.recovery_window_days
  tags                    = merge(var.tags, { Service = each.value.service })
}

output "arns" {
  description = "Service => secret key => secret ARN."
  value = {
    for svc, extra in var.services : svc => {
      for key in concat(local.common, extra) : key => aws_secretsmanager_secret.this["${svc}/${key}"].arn
    }
  }
}

output "all_arns" {
  description = "Every secret's ARN."
  value       = [for s in aws_secretsmanager_secret.this : s.arn]
}

output "kms_key_arn" {
  value = aws_kms_key.secrets.arn
}

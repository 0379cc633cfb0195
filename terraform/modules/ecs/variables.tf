variable "name" {
  description = "Prefix of every resource name (paywire-prod)."
  type        = string
}

variable "environment" {
  description = "dev or prod (log group paths, tags)."
  type        = string
}

variable "region" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "vpc_cidr" {
  description = "The VPC's range: the tasks' HTTPS egress to the interface endpoints."
  type        = string
}

variable "subnet_ids" {
  description = "Private service subnets (tasks and the internal load balancer)."
  type        = list(string)
}

variable "s3_prefix_list_id" {
  description = "The S3 gateway endpoint's prefix list (image layers)."
  type        = string
}

variable "database_security_group_id" {
  description = "The database's security group: each service gets an ingress rule on 5432 in it."
  type        = string
}

variable "database_port" {
  type    = number
  default = 5432
}

variable "certificate_arn" {
  description = "ACM certificate (from the private CA) on the load balancer's HTTPS listeners."
  type        = string
}

variable "client_cidrs" {
  description = "Who may call the services through the internal load balancer (office VPN, peered VPCs). Never 0.0.0.0/0."
  type        = list(string)
  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0)) && !startswith(c, "0.0.0.0/")])
    error_message = "client_cidrs must be CIDR ranges, and none may be 0.0.0.0/0: the services are internal."
  }
}

variable "monitoring_cidrs" {
  description = "Who may scrape the admin ports (/metrics, /readyz). Never 0.0.0.0/0."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.monitoring_cidrs : can(cidrhost(c, 0)) && !startswith(c, "0.0.0.0/")])
    error_message = "monitoring_cidrs must be CIDR ranges, and none may be 0.0.0.0/0."
  }
}

variable "namespace" {
  description = "Cloud Map private DNS namespace for service-to-service calls (merchant.<namespace>)."
  type        = string
}

variable "repository_urls" {
  description = "ECR repository URL by image name (every service and tools)."
  type        = map(string)
}

variable "repository_arns" {
  description = "ECR repository ARN by image name."
  type        = map(string)
}

variable "image_tag" {
  description = "The image tag to run: the git commit scripts/images tagged it with."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{7,40}$", var.image_tag))
    error_message = "image_tag is a git commit (7 to 40 hex digits): tags are immutable, so never 'latest'."
  }
}

variable "secret_arns" {
  description = "Service => secret key => Secrets Manager ARN (the secrets module's arns)."
  type        = map(map(string))
}

variable "secrets_kms_key_arn" {
  description = "The KMS key the secrets are encrypted with."
  type        = string
}

variable "log_retention_days" {
  type = number
}

variable "internal_identities" {
  description = "URI SANs (SPIFFE ids) of internal callers, given to every service."
  type        = list(string)
}

variable "services" {
  description = "One entry per paywire service."
  type = map(object({
    port            = number # gRPC (TLS)
    admin_port      = number # /metrics, /healthz, /readyz
    health_service  = string # grpc.health.v1 service name
    cpu             = number # Fargate CPU units
    memory          = number # MiB
    workers         = number # event loops per task
    db_connections  = number # pool per worker
    desired_count   = number
    min_count       = number
    max_count       = number
    cpu_target      = number       # autoscaling: average CPU percent
    requests_target = number       # autoscaling: ALB requests per target per minute
    secrets         = list(string) # secret keys beyond the common ones, as PW_<SERVICE>_<KEY>
  }))
}

variable "tags" {
  type    = map(string)
  default = {}
}

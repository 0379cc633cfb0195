variable "name" {
  description = "Prefix of every resource name (paywire-prod)."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "The database subnets (one per availability zone)."
  type        = list(string)
}

variable "engine_version" {
  description = "PostgreSQL major (or major.minor) version."
  type        = string
  default     = "15"
}

variable "instance_class" {
  type = string
}

variable "allocated_storage" {
  description = "GiB at creation."
  type        = number
}

variable "max_allocated_storage" {
  description = "GiB storage autoscaling may grow to."
  type        = number
}

variable "multi_az" {
  description = "A standby in a second availability zone (production)."
  type        = bool
}

variable "deletion_protection" {
  description = "Refuse deletion, and take a final snapshot when it is deleted anyway (production)."
  type        = bool
}

variable "backup_retention_days" {
  type = number
  validation {
    condition     = var.backup_retention_days >= 1
    error_message = "Automated backups stay on: at least one day."
  }
}

variable "performance_insights_retention_days" {
  description = "7 (free) or a multiple of 31."
  type        = number
  default     = 7
}

variable "max_connections" {
  description = "PostgreSQL max_connections (every service's pool per worker per task adds up)."
  type        = number
  default     = 400
}

variable "alarm_topic_arn" {
  description = "SNS topic for the database alarms."
  type        = string
}

variable "cpu_alarm_percent" {
  type    = number
  default = 80
}

variable "free_storage_alarm_bytes" {
  type    = number
  default = 10737418240
}

variable "connections_alarm_fraction" {
  description = "Alarm when connections pass this fraction of max_connections."
  type        = number
  default     = 0.8
}

variable "tags" {
  type    = map(string)
  default = {}
}

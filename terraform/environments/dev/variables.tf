variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "availability_zones" {
  type    = list(string)
  default = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "image_tag" {
  description = "The git commit whose images to run (scripts/images tags them with it)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for the internal load balancer (private CA)."
  type        = string
}

variable "client_cidrs" {
  description = "Networks that call the services through the load balancer."
  type        = list(string)
  default     = ["10.0.0.0/8"]
  validation {
    condition     = !anytrue([for c in var.client_cidrs : startswith(c, "0.0.0.0/")])
    error_message = "The services are internal: client_cidrs may not hold 0.0.0.0/0."
  }
}

variable "monitoring_cidrs" {
  description = "Networks that scrape the admin ports."
  type        = list(string)
  default     = ["10.250.0.0/16"]
  validation {
    condition     = !anytrue([for c in var.monitoring_cidrs : startswith(c, "0.0.0.0/")])
    error_message = "The services are internal: monitoring_cidrs may not hold 0.0.0.0/0."
  }
}

variable "alarm_emails" {
  type    = list(string)
  default = []
}

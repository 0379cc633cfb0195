variable "name" {
  description = "Prefix of every resource name (paywire-dev, paywire-prod)."
  type        = string
}

variable "region" {
  description = "AWS region, for the VPC endpoints' service names."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's address range."
  type        = string
}

variable "availability_zones" {
  description = "Exactly three availability zones; one service and one database subnet in each."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) == 3
    error_message = "The VPC spans exactly three availability zones."
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

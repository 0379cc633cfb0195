output "vpc_id" {
  value = aws_vpc.this.id
}

output "cidr_block" {
  value = aws_vpc.this.cidr_block
}

output "service_subnet_ids" {
  value = aws_subnet.service[*].id
}

output "database_subnet_ids" {
  value = aws_subnet.database[*].id
}

output "s3_prefix_list_id" {
  description = "The S3 gateway endpoint's prefix list, for egress rules to image layers."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}

output "interface_endpoints" {
  description = "Interface endpoint ids by AWS service (ecr.api, ecr.dkr, secretsmanager, logs)."
  value       = { for k, e in aws_vpc_endpoint.interface : k => e.id }
}

output "endpoint_security_group_id" {
  value = aws_security_group.endpoints.id
}

output "ingress_rules" {
  description = "Every ingress rule this module makes (for the tests)."
  value       = [aws_vpc_security_group_ingress_rule.endpoints_https]
}

# Security groups. Nothing is open to 0.0.0.0/0 in either direction:
# - the load balancer takes client_cidrs and the service tasks on each service
#   port, and sends only to the service tasks (traffic and health checks);
# - a service task takes its gRPC port from the load balancer and from the
#   other services (Cloud Map: direct calls keep mTLS identities end to end),
#   its admin port from monitoring_cidrs, and sends HTTPS to the VPC's
#   interface endpoints and S3's prefix list, 5432 to the database and gRPC to
#   the other services.

locals {
  service_pairs = {
    for p in setproduct(keys(var.services), keys(var.services)) : "${p[0]}->${p[1]}" => { from = p[0], to = p[1] }
    if p[0] != p[1]
  }
  client_rules = {
    for p in setproduct(keys(var.services), var.client_cidrs) : "${p[0]}/${p[1]}" => { service = p[0], cidr = p[1] }
  }
  monitoring_rules = {
    for p in setproduct(keys(var.services), var.monitoring_cidrs) : "${p[0]}/${p[1]}" => { service = p[0], cidr = p[1] }
  }
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Internal load balancer in front of the paywire services"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-alb" })
}

resource "aws_security_group" "service" {
  for_each    = var.services
  name        = "${var.name}-${each.key}"
  description = "${each.key} tasks"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-${each.key}", Service = each.key })
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_clients" {
  for_each          = local.client_rules
  security_group_id = aws_security_group.alb.id
  description       = "${each.value.service} gRPC from ${each.value.cidr}"
  ip_protocol       = "tcp"
  from_port         = var.services[each.value.service].port
  to_port           = var.services[each.value.service].port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_services" {
  for_each                     = local.service_pairs
  security_group_id            = aws_security_group.alb.id
  description                  = "${each.value.to} gRPC from ${each.value.from} tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.services[each.value.to].port
  to_port                      = var.services[each.value.to].port
  referenced_security_group_id = aws_security_group.service[each.value.from].id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_service" {
  for_each                     = var.services
  security_group_id            = aws_security_group.alb.id
  description                  = "${each.key} traffic and health checks"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.service[each.key].id
}

resource "aws_vpc_security_group_ingress_rule" "service_from_alb" {
  for_each                     = var.services
  security_group_id            = aws_security_group.service[each.key].id
  description                  = "gRPC from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "service_from_service" {
  for_each                     = local.service_pairs
  security_group_id            = aws_security_group.service[each.value.to].id
  description                  = "gRPC from ${each.value.from} tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.services[each.value.to].port
  to_port                      = var.services[each.value.to].port
  referenced_security_group_id = aws_security_group.service[each.value.from].id
}

resource "aws_vpc_security_group_ingress_rule" "service_admin" {
  for_each          = local.monitoring_rules
  security_group_id = aws_security_group.service[each.value.service].id
  description       = "admin (/metrics, /readyz) from ${each.value.cidr}"
  ip_protocol       = "tcp"
  from_port         = var.services[each.value.service].admin_port
  to_port           = var.services[each.value.service].admin_port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_egress_rule" "service_to_service" {
  for_each                     = local.service_pairs
  security_group_id            = aws_security_group.service[each.value.from].id
  description                  = "gRPC to ${each.value.to} tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.services[each.value.to].port
  to_port                      = var.services[each.value.to].port
  referenced_security_group_id = aws_security_group.service[each.value.to].id
}

resource "aws_vpc_security_group_egress_rule" "service_to_alb" {
  for_each                     = local.service_pairs
  security_group_id            = aws_security_group.service[each.value.from].id
  description                  = "gRPC to ${each.value.to} through the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.services[each.value.to].port
  to_port                      = var.services[each.value.to].port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "service_to_endpoints" {
  for_each          = var.services
  security_group_id = aws_security_group.service[each.key].id
  description       = "HTTPS to the interface VPC endpoints (ECR, Secrets Manager, Logs)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_vpc_security_group_egress_rule" "service_to_s3" {
  for_each          = var.services
  security_group_id = aws_security_group.service[each.key].id
  description       = "HTTPS to S3 (image layers) through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.s3_prefix_list_id
}

resource "aws_vpc_security_group_egress_rule" "service_to_db" {
  for_each                     = var.services
  security_group_id            = aws_security_group.service[each.key].id
  description                  = "PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = var.database_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_service" {
  for_each                     = var.services
  security_group_id            = var.database_security_group_id
  description                  = "PostgreSQL from ${each.key} tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = aws_security_group.service[each.key].id
}

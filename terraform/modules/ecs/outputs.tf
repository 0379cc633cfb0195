output "cluster_name" {
  value = aws_ecs_cluster.this.name
}

output "load_balancer_dns_name" {
  description = "Operators and API-key callers: <dns>:<service port>."
  value       = aws_lb.this.dns_name
}

output "load_balancer_arn_suffix" {
  value = aws_lb.this.arn_suffix
}

output "target_group_arn_suffixes" {
  value = { for k, tg in aws_lb_target_group.service : k => tg.arn_suffix }
}

output "log_group_names" {
  value = { for k, g in aws_cloudwatch_log_group.service : k => g.name }
}

output "migration_task_families" {
  description = "aws ecs run-task --task-definition <family> runs a service's migrations."
  value       = { for k, t in aws_ecs_task_definition.migrate : k => t.family }
}

output "discovery_names" {
  description = "Service-to-service addresses (Cloud Map)."
  value       = { for k, s in var.services : k => "${k}.${var.namespace}:${s.port}" }
}

# For the tests: the objects whose settings the assertions read.
output "target_groups" {
  value = aws_lb_target_group.service
}

output "listeners" {
  value = aws_lb_listener.service
}

output "services" {
  value = aws_ecs_service.service
}

output "task_definitions" {
  value = merge(
    { for k, t in aws_ecs_task_definition.service : k => t.container_definitions },
    { for k, t in aws_ecs_task_definition.migrate : "${k}-migrate" => t.container_definitions },
  )
}

output "autoscaling_policies" {
  value = { for k, _ in var.services : k => [aws_appautoscaling_policy.cpu[k].name, aws_appautoscaling_policy.requests[k].name] }
}

output "ingress_rules" {
  description = "Every ingress rule this module makes."
  value = concat(
    values(aws_vpc_security_group_ingress_rule.alb_from_clients),
    values(aws_vpc_security_group_ingress_rule.alb_from_services),
    values(aws_vpc_security_group_ingress_rule.service_from_alb),
    values(aws_vpc_security_group_ingress_rule.service_from_service),
    values(aws_vpc_security_group_ingress_rule.service_admin),
    values(aws_vpc_security_group_ingress_rule.db_from_service),
  )
}

output "egress_rules" {
  description = "Every egress rule this module makes."
  value = concat(
    values(aws_vpc_security_group_egress_rule.alb_to_service),
    values(aws_vpc_security_group_egress_rule.service_to_service),
    values(aws_vpc_security_group_egress_rule.service_to_alb),
    values(aws_vpc_security_group_egress_rule.service_to_endpoints),
    values(aws_vpc_security_group_egress_rule.service_to_s3),
    values(aws_vpc_security_group_egress_rule.service_to_db),
  )
}

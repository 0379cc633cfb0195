output "load_balancer_dns_name" {
  value = module.ecs.load_balancer_dns_name
}

output "discovery_names" {
  value = module.ecs.discovery_names
}

output "database_address" {
  value = module.rds.address
}

output "database_master_secret_arn" {
  value = module.rds.master_user_secret_arn
}

output "repository_urls" {
  value = module.ecr.repository_urls
}

output "migration_task_families" {
  value = module.ecs.migration_task_families
}

output "cluster_name" {
  value = module.ecs.cluster_name
}

output "service_subnet_ids" {
  description = "For `aws ecs run-task` (the migration task)."
  value       = module.network.service_subnet_ids
}

output "alarm_topic_arn" {
  value = module.alarms.topic_arn
}

# Production: Multi-AZ database with deletion protection and a final
# snapshot, 35 days of backups, two or more tasks per service, 90 days of logs.

locals {
  name = "paywire-prod"
  tags = { Project = "paywire", Environment = "prod", ManagedBy = "terraform" }

  # Sizes per service; the fixed facts come from the catalog.
  sizes = {
    merchant      = { cpu = 1024, memory = 2048, workers = 2, db_connections = 8, desired_count = 3, min_count = 3, max_count = 12, cpu_target = 60, requests_target = 6000 }
    orchestration = { cpu = 2048, memory = 4096, workers = 4, db_connections = 8, desired_count = 3, min_count = 3, max_count = 20, cpu_target = 60, requests_target = 6000 }
    finance       = { cpu = 1024, memory = 2048, workers = 2, db_connections = 8, desired_count = 2, min_count = 2, max_count = 8, cpu_target = 60, requests_target = 4000 }
    compliance    = { cpu = 1024, memory = 2048, workers = 2, db_connections = 8, desired_count = 2, min_count = 2, max_count = 8, cpu_target = 60, requests_target = 4000 }
  }
  services = { for k, s in module.catalog.services : k => merge(s, local.sizes[k]) }
}

module "catalog" {
  source = "../../modules/catalog"
}

module "network" {
  source             = "../../modules/network"
  name               = local.name
  region             = var.region
  cidr_block         = "10.20.0.0/16"
  availability_zones = var.availability_zones
  tags               = local.tags
}

module "ecr" {
  source       = "../../modules/ecr"
  name         = local.name
  repositories = toset(concat(keys(local.services), ["tools"]))
  keep_images  = 100
  tags         = local.tags
}

module "secrets" {
  source               = "../../modules/secrets"
  name                 = local.name
  services             = { for k, s in local.services : k => s.secrets }
  recovery_window_days = 30
  tags                 = local.tags
}

module "alarms" {
  source                    = "../../modules/alarms"
  name                      = local.name
  services                  = toset(keys(local.services))
  load_balancer_arn_suffix  = module.ecs.load_balancer_arn_suffix
  target_group_arn_suffixes = module.ecs.target_group_arn_suffixes
  log_group_names           = module.ecs.log_group_names
  email_subscribers         = var.alarm_emails
  p99_latency_seconds       = 0.3
  tags                      = local.tags
}

module "rds" {
  source                              = "../../modules/rds"
  name                                = local.name
  vpc_id                              = module.network.vpc_id
  subnet_ids                          = module.network.database_subnet_ids
  instance_class                      = "db.r6g.xlarge"
  allocated_storage                   = 200
  max_allocated_storage               = 1000
  multi_az                            = true
  deletion_protection                 = true
  backup_retention_days               = 35
  performance_insights_retention_days = 31
  max_connections                     = 800
  alarm_topic_arn                     = module.alarms.topic_arn
  free_storage_alarm_bytes            = 21474836480
  tags                                = local.tags
}

module "ecs" {
  source                     = "../../modules/ecs"
  name                       = local.name
  environment                = "prod"
  region                     = var.region
  vpc_id                     = module.network.vpc_id
  vpc_cidr                   = module.network.cidr_block
  subnet_ids                 = module.network.service_subnet_ids
  s3_prefix_list_id          = module.network.s3_prefix_list_id
  database_security_group_id = module.rds.security_group_id
  database_port              = 5432
  certificate_arn            = var.certificate_arn
  client_cidrs               = var.client_cidrs
  monitoring_cidrs           = var.monitoring_cidrs
  namespace                  = "prod.paywire.internal"
  repository_urls            = module.ecr.repository_urls
  repository_arns            = module.ecr.repository_arns
  image_tag                  = var.image_tag
  secret_arns                = module.secrets.arns
  secrets_kms_key_arn        = module.secrets.kms_key_arn
  log_retention_days         = 90
  internal_identities        = module.catalog.internal_identities
  services                   = local.services
  tags                       = local.tags
}

# Development: one small single-AZ database that can be deleted without a
# snapshot, 3 days of backups, one task per service, 14 days of logs.

locals {
  name = "paywire-dev"
  tags = { Project = "paywire", Environment = "dev", ManagedBy = "terraform" }

  # Sizes per service; the fixed facts come from the catalog.
  sizes = {
    merchant      = { cpu = 256, memory = 512, workers = 1, db_connections = 4, desired_count = 1, min_count = 1, max_count = 2, cpu_target = 70, requests_target = 3000 }
    orchestration = { cpu = 512, memory = 1024, workers = 1, db_connections = 4, desired_count = 1, min_count = 1, max_count = 2, cpu_target = 70, requests_target = 3000 }
    finance       = { cpu = 256, memory = 512, workers = 1, db_connections = 4, desired_count = 1, min_count = 1, max_count = 2, cpu_target = 70, requests_target = 3000 }
    compliance    = { cpu = 256, memory = 512, workers = 1, db_connections = 4, desired_count = 1, min_count = 1, max_count = 2, cpu_target = 70, requests_target = 3000 }
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
  cidr_block         = "10.10.0.0/16"
  availability_zones = var.availability_zones
  tags               = local.tags
}

module "ecr" {
  source       = "../../modules/ecr"
  name         = local.name
  repositories = toset(concat(keys(local.services), ["tools"]))
  keep_images  = 20
  tags         = local.tags
}

module "secrets" {
  source               = "../../modules/secrets"
  name                 = local.name
  services             = { for k, s in local.services : k => s.secrets }
  recovery_window_days = 0
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
  p99_latency_seconds       = 1
  tags                      = local.tags
}

module "rds" {
  source                              = "../../modules/rds"
  name                                = local.name
  vpc_id                              = module.network.vpc_id
  subnet_ids                          = module.network.database_subnet_ids
  instance_class                      = "db.t4g.medium"
  allocated_storage                   = 20
  max_allocated_storage               = 100
  multi_az                            = false
  deletion_protection                 = false
  backup_retention_days               = 3
  performance_insights_retention_days = 7
  max_connections                     = 200
  alarm_topic_arn                     = module.alarms.topic_arn
  free_storage_alarm_bytes            = 2147483648
  tags                                = local.tags
}

module "ecs" {
  source                     = "../../modules/ecs"
  name                       = local.name
  environment                = "dev"
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
  namespace                  = "dev.paywire.internal"
  repository_urls            = module.ecr.repository_urls
  repository_arns            = module.ecr.repository_arns
  image_tag                  = var.image_tag
  secret_arns                = module.secrets.arns
  secrets_kms_key_arn        = module.secrets.kms_key_arn
  log_retention_days         = 14
  internal_identities        = module.catalog.internal_identities
  services                   = local.services
  tags                       = local.tags
}

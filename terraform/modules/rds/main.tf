# One PostgreSQL 15 instance holding every service's database (each with its
# own owner and app roles, made by the first deploy: docs/deploy.md). Private,
# encrypted with its own KMS key, TLS forced, pg_trgm allowed, Performance
# Insights on. The master password is made and kept by RDS in Secrets Manager
# (manage_master_user_password), so it is never in Terraform's state.

resource "aws_kms_key" "db" {
  description         = "${var.name} database storage, snapshots, Performance Insights and master secret"
  enable_key_rotation = true
  tags                = var.tags
}

resource "aws_kms_alias" "db" {
  name          = "alias/${var.name}-db"
  target_key_id = aws_kms_key.db.key_id
}

resource "aws_db_subnet_group" "this" {
  name       = "${var.name}-db"
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

# No rules here: the ECS module adds one ingress rule per service security
# group on 5432, and nothing else reaches the database.
resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "PostgreSQL: only from the service tasks"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-db" })
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name}-postgres15"
  family = "postgres15"
  tags   = var.tags

  parameter {
    name  = "rds.allowed_extensions"
    value = "pg_trgm,pgcrypto"
  }

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name         = "max_connections"
    value        = tostring(var.max_connections)
    apply_method = "pending-reboot"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  parameter {
    name         = "shared_preload_libraries"
    value        = "pg_stat_statements"
    apply_method = "pending-reboot"
  }
}

resource "aws_db_instance" "this" {
  identifier     = "${var.name}-postgres"
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class

  allocated_storage     = var.allocated_storage
  max_allocated_storage = var.max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.db.arn

  username                      = "paywire_admin"
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.db.arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  multi_az               = var.multi_az
  parameter_group_name   = aws_db_parameter_group.this.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  backup_retention_period  = var.backup_retention_days
  backup_window            = "03:00-03:30"
  maintenance_window       = "sun:04:00-sun:04:30"
  copy_tags_to_snapshot    = true
  delete_automated_backups = !var.deletion_protection

  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = !var.deletion_protection
  final_snapshot_identifier = var.deletion_protection ? "${var.name}-postgres-final" : null

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.db.arn
  performance_insights_retention_period = var.performance_insights_retention_days

  auto_minor_version_upgrade      = true
  allow_major_version_upgrade     = false
  apply_immediately               = !var.deletion_protection
  enabled_cloudwatch_logs_exports = ["postgresql"]

  tags = var.tags
}

locals {
  db_alarms = {
    cpu = {
      metric      = "CPUUtilization"
      statistic   = "Average"
      comparison  = "GreaterThanThreshold"
      threshold   = var.cpu_alarm_percent
      description = "RDS CPU above ${var.cpu_alarm_percent}% for 15 minutes (runbook: docs/deploy.md#rds-cpu)"
    }
    free_storage = {
      metric      = "FreeStorageSpace"
      statistic   = "Minimum"
      comparison  = "LessThanThreshold"
      threshold   = var.free_storage_alarm_bytes
      description = "RDS free storage below ${var.free_storage_alarm_bytes} bytes (runbook: docs/deploy.md#rds-free-storage)"
    }
    connections = {
      metric      = "DatabaseConnections"
      statistic   = "Maximum"
      comparison  = "GreaterThanThreshold"
      threshold   = floor(var.max_connections * var.connections_alarm_fraction)
      description = "RDS connections above ${floor(var.max_connections * var.connections_alarm_fraction)} of ${var.max_connections} (runbook: docs/deploy.md#rds-connections)"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "db" {
  for_each            = local.db_alarms
  alarm_name          = "${var.name}-rds-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  namespace           = "AWS/RDS"
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  period              = 300
  evaluation_periods  = 3
  treat_missing_data  = "breaching"
  dimensions          = { DBInstanceIdentifier = aws_db_instance.this.identifier }
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
  tags                = var.tags
}

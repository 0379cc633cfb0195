output "address" {
  description = "The instance's DNS name (for the services' database URLs)."
  value       = aws_db_instance.this.address
}

output "port" {
  value = aws_db_instance.this.port
}

output "security_group_id" {
  value = aws_security_group.db.id
}

output "master_user_secret_arn" {
  description = "The Secrets Manager secret RDS keeps the master password in."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "kms_key_arn" {
  value = aws_kms_key.db.arn
}

output "instance" {
  description = "The settings that matter, for the tests."
  value = {
    multi_az            = aws_db_instance.this.multi_az
    storage_encrypted   = aws_db_instance.this.storage_encrypted
    kms_key_id          = aws_db_instance.this.kms_key_id
    publicly_accessible = aws_db_instance.this.publicly_accessible
    deletion_protection = aws_db_instance.this.deletion_protection
    skip_final_snapshot = aws_db_instance.this.skip_final_snapshot
    backup_retention    = aws_db_instance.this.backup_retention_period
    engine_version      = aws_db_instance.this.engine_version
    performance_insight = aws_db_instance.this.performance_insights_enabled
    subnet_group        = aws_db_instance.this.db_subnet_group_name
  }
}

output "parameters" {
  description = "The parameter group's parameters (for the tests)."
  value       = aws_db_parameter_group.this.parameter
}

output "alarms" {
  description = "Alarm name by kind (cpu, free_storage, connections)."
  value       = { for k, a in aws_cloudwatch_metric_alarm.db : k => a.alarm_name }
}

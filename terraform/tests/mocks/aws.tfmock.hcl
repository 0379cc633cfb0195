# Mocked values for the AWS provider in `terraform test`: the provider checks
# that ARNs look like ARNs even when mocked, so every resource whose ARN feeds
# another resource gets one here (the account and ids are made up).

mock_resource "aws_sns_topic" {
  defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:paywire-alarms" }
}

mock_resource "aws_kms_key" {
  defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
}

mock_resource "aws_iam_role" {
  defaults = { arn = "arn:aws:iam::123456789012:role/paywire-role" }
}

mock_resource "aws_lb" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/paywire/0123456789abcdef"
    arn_suffix = "app/paywire/0123456789abcdef"
  }
}

mock_resource "aws_lb_target_group" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/paywire/0123456789abcdef"
    arn_suffix = "targetgroup/paywire/0123456789abcdef"
  }
}

mock_resource "aws_secretsmanager_secret" {
  defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:paywire-AbCdEf" }
}

mock_resource "aws_ecs_task_definition" {
  defaults = { arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/paywire:1" }
}

mock_resource "aws_ecs_cluster" {
  defaults = { arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/paywire" }
}

mock_resource "aws_service_discovery_service" {
  defaults = { arn = "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-0123456789abcdef" }
}

mock_resource "aws_ecr_repository" {
  defaults = {
    arn            = "arn:aws:ecr:eu-west-1:123456789012:repository/paywire"
    repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/paywire"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/paywire" }
}

mock_resource "aws_db_instance" {
  defaults = {
    arn = "arn:aws:rds:eu-west-1:123456789012:db:paywire-postgres"
    master_user_secret = [{
      secret_arn    = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds-master-AbCdEf"
      kms_key_id    = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
      secret_status = "active"
    }]
  }
}

mock_data "aws_caller_identity" {
  defaults = { account_id = "123456789012" }
}

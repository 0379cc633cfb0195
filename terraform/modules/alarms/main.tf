# The SNS topic every alarm goes to, and per service: target 5xx, the gRPC
# server error rate (from the access log lines in CloudWatch Logs), p99
# latency and unhealthy hosts. The database's alarms are in the rds module,
# on this topic. Runbooks: docs/deploy.md#alarms.

variable "name" {
  type = string
}

variable "services" {
  description = "The service names."
  type        = set(string)
}

variable "load_balancer_arn_suffix" {
  type = string
}

variable "target_group_arn_suffixes" {
  type = map(string)
}

variable "log_group_names" {
  type = map(string)
}

variable "email_subscribers" {
  description = "Addresses subscribed to the topic (each confirms once)."
  type        = list(string)
  default     = []
}

variable "target_5xx_per_5min" {
  type    = number
  default = 10
}

variable "grpc_error_rate_percent" {
  description = "INTERNAL, UNKNOWN, DATA_LOSS and UNAVAILABLE answers as a percentage of all calls."
  type        = number
  default     = 1
}

variable "p99_latency_seconds" {
  type    = number
  default = 0.5
}

variable "tags" {
  type    = map(string)
  default = {}
}

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "alarms" {
  description         = "${var.name} alarm topic"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "Account"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchPublishes"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })
  tags = var.tags
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.email_subscribers)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.key
}

locals {
  namespace = "Paywire/${var.name}"
  alb_dims = {
    for svc in var.services : svc => {
      LoadBalancer = var.load_balancer_arn_suffix
      TargetGroup  = var.target_group_arn_suffixes[svc]
    }
  }
}

# The services log one JSON line per call (module "access", field "code").
resource "aws_cloudwatch_log_metric_filter" "grpc_calls" {
  for_each       = var.services
  name           = "${var.name}-${each.key}-grpc-calls"
  log_group_name = var.log_group_names[each.key]
  pattern        = "{ $.module = \"access\" }"
  metric_transformation {
    name          = "${each.key}_grpc_calls"
    namespace     = local.namespace
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_log_metric_filter" "grpc_errors" {
  for_each       = var.services
  name           = "${var.name}-${each.key}-grpc-errors"
  log_group_name = var.log_group_names[each.key]
  pattern        = "{ $.module = \"access\" && ($.code = \"INTERNAL\" || $.code = \"UNKNOWN\" || $.code = \"DATA_LOSS\" || $.code = \"UNAVAILABLE\") }"
  metric_transformation {
    name          = "${each.key}_grpc_errors"
    namespace     = local.namespace
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  for_each            = var.services
  alarm_name          = "${var.name}-${each.key}-target-5xx"
  alarm_description   = "${each.key}: more than ${var.target_5xx_per_5min} HTTP 5xx from targets in 5 minutes (runbook: docs/deploy.md#target-5xx)"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_Target_5XX_Count"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.target_5xx_per_5min
  treat_missing_data  = "notBreaching"
  dimensions          = local.alb_dims[each.key]
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = merge(var.tags, { Service = each.key })
}

resource "aws_cloudwatch_metric_alarm" "grpc_errors" {
  for_each            = var.services
  alarm_name          = "${var.name}-${each.key}-grpc-error-rate"
  alarm_description   = "${each.key}: more than ${var.grpc_error_rate_percent}% of calls end INTERNAL/UNKNOWN/DATA_LOSS/UNAVAILABLE (runbook: docs/deploy.md#grpc-error-rate)"
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.grpc_error_rate_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "rate"
    expression  = "IF(calls > 0, 100 * errors / calls, 0)"
    label       = "gRPC server error rate (%)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = local.namespace
      metric_name = aws_cloudwatch_log_metric_filter.grpc_errors[each.key].metric_transformation[0].name
      period      = 300
      stat        = "Sum"
    }
  }

  metric_query {
    id = "calls"
    metric {
      namespace   = local.namespace
      metric_name = aws_cloudwatch_log_metric_filter.grpc_calls[each.key].metric_transformation[0].name
      period      = 300
      stat        = "Sum"
    }
  }

  tags = merge(var.tags, { Service = each.key })
}

resource "aws_cloudwatch_metric_alarm" "p99_latency" {
  for_each            = var.services
  alarm_name          = "${var.name}-${each.key}-p99-latency"
  alarm_description   = "${each.key}: p99 target response time above ${var.p99_latency_seconds} s (runbook: docs/deploy.md#p99-latency)"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  extended_statistic  = "p99"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.p99_latency_seconds
  treat_missing_data  = "notBreaching"
  dimensions          = local.alb_dims[each.key]
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = merge(var.tags, { Service = each.key })
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  for_each            = var.services
  alarm_name          = "${var.name}-${each.key}-unhealthy-hosts"
  alarm_description   = "${each.key}: a task fails its grpc.health.v1 check (runbook: docs/deploy.md#unhealthy-hosts)"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  dimensions          = local.alb_dims[each.key]
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = merge(var.tags, { Service = each.key })
}

output "topic_arn" {
  value = aws_sns_topic.alarms.arn
}

output "alarms" {
  description = "Service => alarm kind => alarm name."
  value = {
    for svc in var.services : svc => {
      target_5xx      = aws_cloudwatch_metric_alarm.target_5xx[svc].alarm_name
      grpc_error_rate = aws_cloudwatch_metric_alarm.grpc_errors[svc].alarm_name
      p99_latency     = aws_cloudwatch_metric_alarm.p99_latency[svc].alarm_name
      unhealthy_hosts = aws_cloudwatch_metric_alarm.unhealthy_hosts[svc].alarm_name
    }
  }
}

output "alarm_actions" {
  description = "Every service alarm's actions (for the tests)."
  value = flatten([
    for a in concat(values(aws_cloudwatch_metric_alarm.target_5xx), values(aws_cloudwatch_metric_alarm.grpc_errors),
    values(aws_cloudwatch_metric_alarm.p99_latency), values(aws_cloudwatch_metric_alarm.unhealthy_hosts)) : a.alarm_actions
  ])
}

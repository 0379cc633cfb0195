# The Fargate cluster and, per service: a log group, the service's task
# definition, a one-off migration task definition, the ECS service behind its
# target group and in Cloud Map, and autoscaling on CPU and request count.
#
# Images (scripts/images): /usr/bin/<service>-server and its migrations in
# /usr/share/paywire/<service>/migrations, user 65532; the tools image has
# /bin/sh, pwctl and pwmigrate. Secrets reach a task only as Secrets Manager
# references (valueFrom): ECS reads them with the execution role when the task
# starts. The TLS certificate and key cannot be given to paywire as variables
# (its settings are file paths), so a short-lived `tls-init` container writes
# them into a task-local volume that the service mounts read-only.

locals {
  tls_dir = "/run/paywire/tls"
  tls_init_script = join(" && ", [
    "umask 077",
    "printf '%s\\n' \"$TLS_CERT\" > ${local.tls_dir}/cert.pem",
    "printf '%s\\n' \"$TLS_KEY\" > ${local.tls_dir}/key.pem",
    "printf '%s\\n' \"$TLS_CA\" > ${local.tls_dir}/ca.pem",
    "chown 65532:65532 ${local.tls_dir}/cert.pem ${local.tls_dir}/key.pem ${local.tls_dir}/ca.pem",
  ])
  # Secret keys that are not settings of their own: the TLS files.
  tls_keys = ["tls_cert", "tls_key", "tls_ca"]

  log_config = {
    for svc, _ in var.services : svc => {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service[svc].name
        awslogs-region        = var.region
        awslogs-stream-prefix = svc
      }
    }
  }

  # PW_<SERVICE>_<KEY> for every secret that is a setting.
  setting_secrets = {
    for svc, arns in var.secret_arns : svc => [
      for key, arn in arns : { name = "PW_${upper(svc)}_${upper(key)}", valueFrom = arn }
      if !contains(local.tls_keys, key)
    ]
  }

  environment = {
    for svc, s in var.services : svc => [
      for k, v in {
        LISTEN              = "0.0.0.0:${s.port}"
        ADMIN_LISTEN        = "0.0.0.0:${s.admin_port}"
        TLS_CERT            = "${local.tls_dir}/cert.pem"
        TLS_KEY             = "${local.tls_dir}/key.pem"
        TLS_CA              = "${local.tls_dir}/ca.pem"
        INTERNAL_IDENTITIES = join(",", var.internal_identities)
        MIGRATIONS          = "/usr/share/paywire/${svc}/migrations"
        WORKERS             = tostring(s.workers)
        DB_CONNECTIONS      = tostring(s.db_connections)
        LOG_LEVEL           = "info"
      } : { name = "PW_${upper(svc)}_${k}", value = v }
    ]
  }
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "service" {
  for_each          = var.services
  name              = "/paywire/${var.environment}/${each.key}"
  retention_in_days = var.log_retention_days
  tags              = merge(var.tags, { Service = each.key })
}

resource "aws_ecs_task_definition" "service" {
  for_each                 = var.services
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution[each.key].arn
  task_role_arn            = aws_iam_role.task[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tls"
  }

  container_definitions = jsonencode([
    {
      name             = "tls-init"
      image            = "${var.repository_urls["tools"]}:${var.image_tag}"
      essential        = false
      user             = "0"
      entryPoint       = ["/bin/sh", "-c"]
      command          = [local.tls_init_script]
      secrets          = [for key in local.tls_keys : { name = upper(key), valueFrom = var.secret_arns[each.key][key] }]
      mountPoints      = [{ sourceVolume = "tls", containerPath = local.tls_dir, readOnly = false }]
      logConfiguration = local.log_config[each.key]
    },
    {
      name                   = each.key
      image                  = "${var.repository_urls[each.key]}:${var.image_tag}"
      essential              = true
      user                   = "65532"
      readonlyRootFilesystem = true
      stopTimeout            = 30
      portMappings = [
        { name = "grpc", containerPort = each.value.port, protocol = "tcp" },
        { name = "admin", containerPort = each.value.admin_port, protocol = "tcp" },
      ]
      environment      = local.environment[each.key]
      secrets          = local.setting_secrets[each.key]
      mountPoints      = [{ sourceVolume = "tls", containerPath = local.tls_dir, readOnly = true }]
      dependsOn        = [{ containerName = "tls-init", condition = "SUCCESS" }]
      ulimits          = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
      logConfiguration = local.log_config[each.key]
      # The image's health check (label org.paywire.healthcheck): liveness,
      # /healthz on the admin port. Readiness (the database answers) is the
      # load balancer's grpc.health.v1 check, so a database outage takes tasks
      # out of rotation without ECS killing them.
      healthCheck = {
        command     = ["CMD", "/usr/bin/pwprobe", tostring(each.value.admin_port), "/healthz"]
        interval    = 10
        timeout     = 4
        retries     = 3
        startPeriod = 20
      }
    },
  ])

  tags = merge(var.tags, { Service = each.key })
}

# The one-off migration task: the same image with --migrate, as the owner
# role (migrate_database_url). Run before a deploy whose image carries new
# migrations: docs/deploy.md.
resource "aws_ecs_task_definition" "migrate" {
  for_each                 = var.services
  family                   = "${var.name}-${each.key}-migrate"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution[each.key].arn
  task_role_arn            = aws_iam_role.task[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name                   = "${each.key}-migrate"
      image                  = "${var.repository_urls[each.key]}:${var.image_tag}"
      essential              = true
      user                   = "65532"
      readonlyRootFilesystem = true
      command                = ["--migrate"]
      environment = [
        { name = "PW_${upper(each.key)}_MIGRATIONS", value = "/usr/share/paywire/${each.key}/migrations" },
        { name = "PW_${upper(each.key)}_LOG_LEVEL", value = "info" },
      ]
      secrets          = local.setting_secrets[each.key]
      logConfiguration = local.log_config[each.key]
    },
  ])

  tags = merge(var.tags, { Service = each.key })
}

resource "aws_ecs_service" "service" {
  for_each                          = var.services
  name                              = each.key
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.service[each.key].arn
  desired_count                     = each.value.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "1.4.0"
  health_check_grace_period_seconds = 30
  enable_execute_command            = false
  propagate_tags                    = "SERVICE"
  wait_for_steady_state             = false

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.service[each.key].id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.service[each.key].arn
    container_name   = each.key
    container_port   = each.value.port
  }

  service_registries {
    registry_arn = aws_service_discovery_service.service[each.key].arn
  }

  # Autoscaling owns the count once the service exists.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.service, aws_iam_role_policy.execution]
  tags       = merge(var.tags, { Service = each.key })
}

resource "aws_appautoscaling_target" "service" {
  for_each           = var.services
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.service[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.min_count
  max_capacity       = each.value.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each           = var.services
  name               = "${var.name}-${each.key}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.service[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.service[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = each.value.cpu_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  for_each           = var.services
  name               = "${var.name}-${each.key}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.service[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.service[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = each.value.requests_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.service[each.key].arn_suffix}"
    }
  }
}

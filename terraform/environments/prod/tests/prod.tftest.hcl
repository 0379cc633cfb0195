# Offline checks of the production composition: the AWS provider is mocked,
# so this plans and "applies" against no account (scripts/terraform-check).

mock_provider "aws" {
  source = "../../tests/mocks"
}

variables {
  image_tag       = "0123456789abcdef0123456789abcdef01234567"
  certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/test"
}

run "prod" {
  command = apply

  # The database: Multi-AZ, encrypted with our key, private, protected.
  assert {
    condition     = module.rds.instance.multi_az
    error_message = "The production database must be Multi-AZ."
  }
  assert {
    condition     = module.rds.instance.storage_encrypted && module.rds.instance.kms_key_id == module.rds.kms_key_arn
    error_message = "The production database must be encrypted with its own KMS key."
  }
  assert {
    condition     = !module.rds.instance.publicly_accessible
    error_message = "The production database must not be publicly accessible."
  }
  assert {
    condition     = module.rds.instance.deletion_protection && !module.rds.instance.skip_final_snapshot
    error_message = "The production database needs deletion protection and a final snapshot."
  }
  assert {
    condition     = module.rds.instance.backup_retention >= 7 && module.rds.instance.performance_insight
    error_message = "The production database keeps backups for at least 7 days and has Performance Insights on."
  }
  assert {
    condition     = startswith(module.rds.instance.engine_version, "15")
    error_message = "The database is PostgreSQL 15."
  }
  assert {
    condition     = anytrue([for p in module.rds.parameters : p.name == "rds.allowed_extensions" && contains(split(",", p.value), "pg_trgm")])
    error_message = "The parameter group must allow pg_trgm."
  }

  # Every service: a gRPC target group health-checked with grpc.health.v1, behind an HTTPS listener.
  assert {
    condition     = length(module.ecs.target_groups) == 4 && alltrue([for k in ["merchant", "orchestration", "finance", "compliance"] : contains(keys(module.ecs.target_groups), k)])
    error_message = "Every paywire service (merchant, orchestration, finance, compliance) needs a target group."
  }
  assert {
    condition = alltrue([for k, tg in module.ecs.target_groups :
      tg.protocol_version == "GRPC" && tg.protocol == "HTTPS" &&
      tg.health_check[0].enabled && tg.health_check[0].path == "/grpc.health.v1.Health/Check" && tg.health_check[0].matcher == "0"
    ])
    error_message = "Every target group must be GRPC over HTTPS with the grpc.health.v1.Health/Check health check, matcher 0."
  }
  assert {
    condition     = alltrue([for k, l in module.ecs.listeners : l.protocol == "HTTPS" && l.default_action[0].target_group_arn == module.ecs.target_groups[k].arn])
    error_message = "Every service needs an HTTPS listener forwarding to its target group."
  }

  # Nothing opened to the world.
  assert {
    condition = alltrue([for r in concat(module.ecs.ingress_rules, module.network.ingress_rules) :
    r.cidr_ipv4 != "0.0.0.0/0" && r.cidr_ipv6 != "::/0"])
    error_message = "No security group may open the database, the load balancer or the services to 0.0.0.0/0 or ::/0."
  }
  assert {
    condition     = alltrue([for r in module.ecs.egress_rules : r.cidr_ipv4 != "0.0.0.0/0" && r.cidr_ipv6 != "::/0"])
    error_message = "Tasks send only to the VPC, S3's prefix list, the database and each other."
  }

  # Secrets only from Secrets Manager, never a secret setting in plain text.
  assert {
    condition = alltrue(flatten([for k, defs in module.ecs.task_definitions : [
      for c in jsondecode(defs) : [
        for s in try(c.secrets, []) : contains(module.secrets.all_arns, s.valueFrom)
      ]
    ]]))
    error_message = "Every task's secrets must be Secrets Manager references from the secrets module."
  }
  assert {
    condition = alltrue(flatten([for k, defs in module.ecs.task_definitions : [
      for c in jsondecode(defs) : [
        for e in try(c.environment, []) : length(regexall("(DATABASE_URL|ENCRYPTION_KEY|PASSWORD|SECRET)$", e.name)) == 0 && !startswith(e.value, "-----BEGIN")
      ]
    ]]))
    error_message = "No secret (database URL, key, password, PEM) may be in a task definition's environment."
  }
  assert {
    condition = alltrue([for svc in keys(module.ecs.target_groups) :
      length([for c in jsondecode(module.ecs.task_definitions[svc]) : c if c.name == svc && contains([for s in c.secrets : s.name], "PW_${upper(svc)}_DATABASE_URL")]) == 1 &&
      length([for c in jsondecode(module.ecs.task_definitions["${svc}-migrate"]) : c if contains([for s in c.secrets : s.name], "PW_${upper(svc)}_MIGRATE_DATABASE_URL")]) == 1 &&
      length([for c in jsondecode(module.ecs.task_definitions[svc]) : c if c.name == "tls-init" && length(c.secrets) == 3]) == 1
    ])
    error_message = "Each service task gets its database URL and TLS files, and each migration task its owner URL, from Secrets Manager."
  }
  assert {
    condition     = module.secrets.arns["merchant"]["encryption_key"] != null
    error_message = "merchant's encryption key is a secret."
  }

  assert {
    condition = alltrue([for svc in keys(module.ecs.target_groups) :
    length([for c in jsondecode(module.ecs.task_definitions[svc]) : c if c.name == svc && try(c.healthCheck.command[1], "") == "/usr/bin/pwprobe"]) == 1])
    error_message = "Every service container runs the image's health check (pwprobe on the admin port)."
  }

  # Deployments roll back; tasks autoscale.
  assert {
    condition     = alltrue([for k, s in module.ecs.services : s.deployment_circuit_breaker[0].enable && s.deployment_circuit_breaker[0].rollback && s.launch_type == "FARGATE"])
    error_message = "Every service runs on Fargate with the deployment circuit breaker rolling back."
  }
  assert {
    condition     = alltrue([for k, p in module.ecs.autoscaling_policies : length(p) == 2])
    error_message = "Every service scales on CPU and on request count."
  }

  # Alarms: the four per service, the database's, all to the topic.
  assert {
    condition = alltrue([for svc in keys(module.ecs.target_groups) :
    length(lookup(module.alarms.alarms, svc, {})) == 4])
    error_message = "Every service needs its target 5xx, gRPC error rate, p99 latency and unhealthy hosts alarms."
  }
  assert {
    condition     = length(module.rds.alarms) == 3
    error_message = "The database needs its CPU, free storage and connections alarms."
  }
  assert {
    condition     = alltrue([for a in module.alarms.alarm_actions : a == module.alarms.topic_arn])
    error_message = "Every alarm goes to the SNS topic."
  }

  # ECR: immutable tags, scanned.
  assert {
    condition     = alltrue([for k, r in module.ecr.repositories : r.image_tag_mutability == "IMMUTABLE" && r.image_scanning_configuration[0].scan_on_push])
    error_message = "Every repository has immutable tags and scan on push."
  }
}

run "world_open_clients_refused" {
  command = plan
  variables {
    client_cidrs = ["10.0.0.0/8", "0.0.0.0/0"]
  }
  expect_failures = [var.client_cidrs]
}

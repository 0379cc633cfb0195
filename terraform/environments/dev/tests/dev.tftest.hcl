# Offline checks of the development composition (mocked AWS provider): what
# differs from prod, and the invariants that hold in every environment.

mock_provider "aws" {
  source = "../../tests/mocks"
}

variables {
  image_tag       = "0123456789abcdef0123456789abcdef01234567"
  certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/test"
}

run "dev" {
  command = apply

  assert {
    condition     = !module.rds.instance.multi_az && !module.rds.instance.deletion_protection && module.rds.instance.skip_final_snapshot
    error_message = "dev: a single-AZ database that can be deleted without a final snapshot."
  }
  assert {
    condition     = module.rds.instance.storage_encrypted && !module.rds.instance.publicly_accessible
    error_message = "Every environment's database is encrypted and private."
  }
  assert {
    condition = alltrue([for k, tg in module.ecs.target_groups :
    tg.protocol_version == "GRPC" && tg.health_check[0].path == "/grpc.health.v1.Health/Check" && tg.health_check[0].matcher == "0"])
    error_message = "Every target group is gRPC with the grpc.health.v1 health check."
  }
  assert {
    condition     = alltrue([for r in concat(module.ecs.ingress_rules, module.network.ingress_rules) : r.cidr_ipv4 != "0.0.0.0/0" && r.cidr_ipv6 != "::/0"])
    error_message = "No security group opens anything to 0.0.0.0/0 or ::/0."
  }
  assert {
    condition = alltrue(flatten([for k, defs in module.ecs.task_definitions : [
      for c in jsondecode(defs) : [for s in try(c.secrets, []) : contains(module.secrets.all_arns, s.valueFrom)]
    ]]))
    error_message = "Every task's secrets are Secrets Manager references."
  }
  assert {
    condition     = alltrue([for svc in keys(module.ecs.target_groups) : length(lookup(module.alarms.alarms, svc, {})) == 4]) && length(module.rds.alarms) == 3
    error_message = "Every service has its four alarms, and the database its three."
  }
}

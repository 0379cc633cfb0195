# The internal load balancer: one HTTPS listener per service on the service's
# own port, forwarding to a gRPC target group (HTTPS to the tasks, HTTP/2
# end to end) whose health check is grpc.health.v1.Health/Check. paywire
# answers it with the overall status (service ""), SERVING only while the
# database answers, so a task that lost its database leaves the rotation.

resource "aws_lb" "this" {
  name                       = "${var.name}-internal"
  internal                   = true
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.environment == "prod"
  idle_timeout               = 300
  tags                       = var.tags
}

resource "aws_lb_target_group" "service" {
  for_each             = var.services
  name                 = "${var.name}-${each.key}"
  port                 = each.value.port
  protocol             = "HTTPS"
  protocol_version     = "GRPC"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 15

  health_check {
    enabled             = true
    protocol            = "HTTPS"
    port                = "traffic-port"
    path                = "/grpc.health.v1.Health/Check"
    matcher             = "0"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = merge(var.tags, { Service = each.key })
}

resource "aws_lb_listener" "service" {
  for_each          = var.services
  load_balancer_arn = aws_lb.this.arn
  port              = each.value.port
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.service[each.key].arn
  }

  tags = merge(var.tags, { Service = each.key })
}

# Service discovery for service-to-service calls: each task registers its IP
# as an A record under <service>.<namespace>; callers use dns:///<service>.<namespace>:<port>
# with round_robin, and mTLS reaches the callee (the load balancer would end it).
resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.namespace
  description = "${var.name} services"
  vpc         = var.vpc_id
  tags        = var.tags
}

resource "aws_service_discovery_service" "service" {
  for_each = var.services
  name     = each.key

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this.id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = merge(var.tags, { Service = each.key })
}

# One repository per image (each service and the tools image): tags are
# immutable (an image is tagged with its git commit once), every push is
# scanned, layers are encrypted with KMS, and untagged layers expire.

variable "name" {
  description = "Prefix of the repository names (paywire-dev)."
  type        = string
}

variable "repositories" {
  description = "Image names: merchant, finance, ..., tools."
  type        = set(string)
}

variable "keep_images" {
  description = "How many tagged images each repository keeps."
  type        = number
  default     = 50
}

variable "tags" {
  type    = map(string)
  default = {}
}

resource "aws_kms_key" "ecr" {
  description         = "${var.name} ECR image layers"
  enable_key_rotation = true
  tags                = var.tags
}

resource "aws_ecr_repository" "this" {
  for_each             = var.repositories
  name                 = "${var.name}/${each.key}"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.ecr.arn
  }

  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each   = aws_ecr_repository.this
  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "untagged layers go after a day"
        selection    = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 1 }
        action       = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "keep the newest tagged images"
        selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = var.keep_images }
        action       = { type = "expire" }
      },
    ]
  })
}

output "repository_urls" {
  description = "Repository URL by image name."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}

output "repository_arns" {
  description = "Repository ARN by image name (for the task execution roles)."
  value       = { for k, r in aws_ecr_repository.this : k => r.arn }
}

output "repositories" {
  description = "The repository objects (for the tests)."
  value       = aws_ecr_repository.this
}
